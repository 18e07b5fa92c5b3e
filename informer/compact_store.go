package informer

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync"
	"unsafe"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// DefaultCompactHotObjects is how many decoded objects a compact cache
// keeps for fast reads when [Options.CompactHotObjects] is 0: enough for
// the objects a controller is working on right now (the ones events just
// arrived for), small enough to cost little beside the encoded objects.
const DefaultCompactHotObjects = 64

// compactStore holds the objects of a compact [Indexer], each encoded in
// one immutable string (see compact_codec.go), in per-namespace
// open-addressing tables: the namespace index comes for free and a key
// costs no allocation of its own. All methods require the Indexer's lock:
// those that change the store its write lock, the others at least its read
// lock.
type compactStore[T Object] struct {
	codec *codec[T]
	seed  maphash.Seed
	// tables maps a namespace (the part of the key before the first "/",
	// "" for keys without one) to the entries under it; empty tables are
	// removed.
	tables map[string]*entryTable
	// plain holds, by key, the objects the codec failed to encode
	// (entries with flagPlain), so nothing is ever dropped.
	plain map[string]T
	// common is the TypeMeta most objects carry (set from the first object
	// with one), restored for entries with typeMetaCommon.
	common    schema.GroupVersionKind
	hasCommon bool
	hot       *hotCache[T] // nil when disabled
	n         int
	bytes     int64
	// onError reports objects that could not be encoded or decoded.
	onError func(key string, err error)
}

func newCompactStore[T Object](hotObjects int, onError func(string, error)) (*compactStore[T], error) {
	c, err := newCodec[T]()
	if err != nil {
		return nil, err
	}
	if onError == nil {
		onError = func(string, error) {}
	}
	s := &compactStore[T]{codec: c, seed: maphash.MakeSeed(), tables: map[string]*entryTable{}, onError: onError}
	if hotObjects > 0 {
		s.hot = newHotCache[T](hotObjects)
	}
	return s, nil
}

func (s *compactStore[T]) hash(key string) uint64 { return maphash.String(s.seed, key) }

// namespaceOfKey is the namespace a key belongs to: the part before the
// first "/", or "" for a cluster-scoped key. For keys from [KeyOf] it is
// the object's namespace.
func namespaceOfKey(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return ""
}

// lookup returns the entry stored under key.
func (s *compactStore[T]) lookup(key string, h uint64) (string, bool) {
	t := s.tables[namespaceOfKey(key)]
	if t == nil {
		return "", false
	}
	i, ok := t.find(key, h)
	if !ok {
		return "", false
	}
	return t.entry(i), true
}

// get returns the object under key: the hot one, or the entry decoded (and
// then made hot). Requires the read lock (hot-cache inserts rely on writers
// being excluded).
func (s *compactStore[T]) get(key string) (T, bool) {
	h := s.hash(key)
	if s.hot != nil {
		if obj, ok := s.hot.get(h, key); ok {
			return obj, true
		}
	}
	e, ok := s.lookup(key, h)
	if !ok {
		var zero T
		return zero, false
	}
	obj, err := s.decode(e)
	if err != nil {
		s.onError(key, err)
		var zero T
		return zero, false
	}
	if s.hot != nil && e[0]&flagPlain == 0 {
		k, _ := entryKey(e)
		s.hot.put(h, k, obj)
	}
	return obj, true
}

// object returns the object of entry e, preferring the hot copy, without
// making it hot (for scans, which would flush the hot cache).
func (s *compactStore[T]) object(e string) (T, error) {
	if s.hot != nil && e[0]&flagPlain == 0 {
		k, _ := entryKey(e)
		if obj, ok := s.hot.get(s.hash(k), k); ok {
			return obj, nil
		}
	}
	return s.decode(e)
}

func (s *compactStore[T]) decode(e string) (T, error) {
	var zero T
	key, off := entryKey(e)
	if off < 0 {
		return zero, errBadEntry
	}
	flags := e[0]
	if flags&flagPlain != 0 {
		obj, ok := s.plain[key]
		if !ok {
			return zero, errBadEntry
		}
		return obj, nil
	}
	var gvk schema.GroupVersionKind
	switch flags & typeMetaMask {
	case typeMetaCommon:
		gvk = s.common
	case typeMetaInline:
		var av, kind string
		var ok1, ok2 bool
		av, off, ok1 = readString(e, off)
		kind, off, ok2 = readString(e, off)
		if !ok1 || !ok2 {
			return zero, errBadEntry
		}
		gvk = schema.FromAPIVersionAndKind(av, kind)
	}
	obj, err := s.codec.unmarshalEntry(e[off:])
	if err != nil {
		return zero, fmt.Errorf("informer: decoding cached %s object: %w", s.codec.name, err)
	}
	if flags&typeMetaMask != typeMetaNone {
		obj.GetObjectKind().SetGroupVersionKind(gvk)
	}
	return obj, nil
}

// encode builds the entry of obj under key, in a buffer that starts with
// its length (see newEntryBuf), and returns the entry and the buffer. On
// failure it returns a plain entry (the caller keeps obj in the plain map)
// and the error.
func (s *compactStore[T]) encode(key string, obj T) (string, unsafe.Pointer, error) {
	var flags byte
	var av, kind string
	if !s.codec.typeMetaInBand {
		gvk := obj.GetObjectKind().GroupVersionKind()
		switch {
		case gvk.Empty():
		case !s.hasCommon || gvk == s.common:
			if !s.hasCommon {
				s.common, s.hasCommon = gvk, true
			}
			flags = typeMetaCommon
		default:
			flags = typeMetaInline
			av, kind = gvk.ToAPIVersionAndKind()
		}
	}
	head := 1 + uvarintLen(len(key)) + len(key)
	if flags == typeMetaInline {
		head += uvarintLen(len(av)) + len(av) + uvarintLen(len(kind)) + len(kind)
	}
	var buf []byte
	var off int
	var err error
	if s.codec.size != nil {
		size := s.codec.size(obj)
		buf, off = newEntryBuf(head + size)
		var n int
		n, err = s.codec.marshalTo(obj, buf[off+head:])
		if err == nil && n != size {
			err = fmt.Errorf("protobuf size %d, marshalled %d", size, n)
		}
	} else {
		var enc []byte
		enc, err = s.codec.marshal(obj)
		if err == nil {
			buf, off = newEntryBuf(head + len(enc))
			copy(buf[off+head:], enc)
		}
	}
	if err != nil {
		buf, off = newEntryBuf(1 + uvarintLen(len(key)) + len(key))
		flags = flagPlain
		err = fmt.Errorf("informer: encoding %s as %s: %w", key, s.codec.name, err)
	}
	e := buf[off:]
	e[0] = flags
	i := 1 + binary.PutUvarint(e[1:], uint64(len(key)))
	i += copy(e[i:], key)
	if flags == typeMetaInline {
		i += binary.PutUvarint(e[i:], uint64(len(av)))
		i += copy(e[i:], av)
		i += binary.PutUvarint(e[i:], uint64(len(kind)))
		copy(e[i:], kind)
	}
	return bytesString(e), unsafe.Pointer(&buf[0]), err
}

func uvarintLen(n int) int {
	return (bits.Len64(uint64(n)|1) + 6) / 7
}

// set stores obj under key (whose hash is h) and returns the stored key (a
// substring of the new entry, for the index sets and the hot cache), and
// whether the object is kept decoded because it could not be encoded.
// Keeping the hot cache right is the caller's job.
func (s *compactStore[T]) set(key string, h uint64, obj T) (stored string, existed, plain bool) {
	e, buf, err := s.encode(key, obj)
	if err != nil {
		s.onError(key, err)
	}
	stored, _ = entryKey(e)
	ns := namespaceOfKey(key)
	t := s.tables[ns]
	if t == nil {
		t = newEntryTable()
		s.tables[strings.Clone(ns)] = t
	}
	i, found := t.find(key, h)
	if found {
		prev := t.entry(i)
		s.bytes -= s.entryBytes(prev)
		if prev[0]&flagPlain != 0 {
			delete(s.plain, key)
		}
	}
	t.put(i, buf, s.seed)
	if !found {
		s.n++
	}
	plain = e[0]&flagPlain != 0
	if plain {
		if s.plain == nil {
			s.plain = map[string]T{}
		}
		s.plain[stored] = obj
	}
	s.bytes += s.entryBytes(e)
	return stored, found, plain
}

// reset empties the store.
func (s *compactStore[T]) reset() {
	s.tables = map[string]*entryTable{}
	s.plain = nil
	s.n, s.bytes = 0, 0
	if s.hot != nil {
		s.hot.clear()
	}
}

// entryBytes is the memory an entry accounts for: its length, or an
// estimate of the object for a plain entry.
func (s *compactStore[T]) entryBytes(e string) int64 {
	if e[0]&flagPlain != 0 {
		k, _ := entryKey(e)
		return int64(len(e) + approxSize(s.plain[k]))
	}
	return int64(len(e))
}

// remove deletes the entry under key (whose hash is h), and its hot
// object, and returns the entry.
func (s *compactStore[T]) remove(key string, h uint64) (string, bool) {
	ns := namespaceOfKey(key)
	t := s.tables[ns]
	if t == nil {
		return "", false
	}
	i, found := t.find(key, h)
	if !found {
		return "", false
	}
	e := t.entry(i)
	s.bytes -= s.entryBytes(e)
	if e[0]&flagPlain != 0 {
		delete(s.plain, key)
	}
	t.remove(i, s.seed)
	s.n--
	if t.used == 0 {
		delete(s.tables, ns)
	}
	if s.hot != nil {
		s.hot.remove(h, key)
	}
	return e, true
}

// each calls fn for every entry until fn returns false.
func (s *compactStore[T]) each(fn func(e string) bool) {
	for _, t := range s.tables {
		if !t.each(fn) {
			return
		}
	}
}

// entryTable is an open-addressing hash set of entries keyed by their key,
// with linear probing. A slot is one pointer, to the start of an entry's
// allocation: the entry's length (uvarint), then the entry (see
// newEntryBuf). nil marks an empty slot and tombstone a deleted one.
type entryTable struct {
	slots []unsafe.Pointer // length a power of two
	used  int
	tombs int
}

var tombstoneByte byte

// tombstone marks a deleted slot. It points to no entry.
var tombstone = unsafe.Pointer(&tombstoneByte)

// newEntryBuf returns a buffer for an entry of n bytes: its length, then
// room for the entry, which starts at the returned offset.
func newEntryBuf(n int) ([]byte, int) {
	off := uvarintLen(n)
	buf := make([]byte, off+n)
	binary.PutUvarint(buf, uint64(n))
	return buf, off
}

// slotEntry returns the entry whose buffer starts at p.
func slotEntry(p unsafe.Pointer) string {
	var n uint64
	var shift uint
	i := uintptr(0)
	for {
		b := *(*byte)(unsafe.Add(p, i))
		i++
		n |= uint64(b&0x7f) << shift
		if b < 0x80 {
			break
		}
		shift += 7
	}
	return unsafe.String((*byte)(unsafe.Add(p, i)), int(n))
}

// Table sizes: a table grows by doubling when three quarters of its slots
// are used or deleted (so its load stays between 3/8 and 3/4: about 13
// bytes of slots per entry) and halves when under an eighth is used.
const minTableSize = 4

func newEntryTable() *entryTable {
	return &entryTable{slots: make([]unsafe.Pointer, minTableSize)}
}

// entry returns the entry in slot i, which must hold one.
func (t *entryTable) entry(i int) string { return slotEntry(t.slots[i]) }

// find returns the slot holding key, or the slot where it would be put.
func (t *entryTable) find(key string, h uint64) (int, bool) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	free := -1
	for {
		switch p := t.slots[i]; p {
		case nil:
			if free >= 0 {
				return free, false
			}
			return int(i), false
		case tombstone:
			if free < 0 {
				free = int(i)
			}
		default:
			if k, _ := entryKey(slotEntry(p)); k == key {
				return int(i), true
			}
		}
		i = (i + 1) & mask
	}
}

// put stores the entry buffer p in slot i (from find), growing the table
// when needed.
func (t *entryTable) put(i int, p unsafe.Pointer, seed maphash.Seed) {
	switch t.slots[i] {
	case nil:
		t.used++
	case tombstone:
		t.used++
		t.tombs--
	}
	t.slots[i] = p
	if (t.used+t.tombs)*4 >= len(t.slots)*3 {
		size := len(t.slots)
		if t.used*2 >= size {
			size *= 2 // else mostly tombstones: clear them at the same size
		}
		t.rehash(size, seed)
	}
}

// remove empties slot i, shrinking the table when it is mostly empty.
func (t *entryTable) remove(i int, seed maphash.Seed) {
	t.slots[i] = tombstone
	t.used--
	t.tombs++
	if len(t.slots) > minTableSize && t.used*8 < len(t.slots) {
		t.rehash(len(t.slots)/2, seed)
	}
}

func (t *entryTable) rehash(size int, seed maphash.Seed) {
	old := t.slots
	t.slots = make([]unsafe.Pointer, size)
	t.used, t.tombs = 0, 0
	mask := uint64(size - 1)
	for _, p := range old {
		if p == nil || p == tombstone {
			continue
		}
		k, _ := entryKey(slotEntry(p))
		i := maphash.String(seed, k) & mask
		for t.slots[i] != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = p
		t.used++
	}
}

func (t *entryTable) each(fn func(e string) bool) bool {
	for _, p := range t.slots {
		if p != nil && p != tombstone && !fn(slotEntry(p)) {
			return false
		}
	}
	return true
}

// hotCache keeps recently used decoded objects: a set-associative cache
// with CLOCK replacement in each set. Its own locks make it safe for the
// concurrent readers of the store; the store keeps it consistent (an
// object is put only by a writer, or by a reader that decoded the current
// entry while holding the store's read lock).
type hotCache[T Object] struct {
	sets []hotSet[T]
	mask uint64
}

const hotWays = 4

type hotSet[T Object] struct {
	mu   sync.Mutex
	hand uint8
	ways [hotWays]hotWay[T]
}

type hotWay[T Object] struct {
	key  string
	obj  T
	used bool
	ref  bool
}

func newHotCache[T Object](n int) *hotCache[T] {
	sets := 1
	for sets*hotWays < n {
		sets *= 2
	}
	return &hotCache[T]{sets: make([]hotSet[T], sets), mask: uint64(sets - 1)}
}

func (c *hotCache[T]) set(h uint64) *hotSet[T] {
	// The high bits: the low ones choose the table slot.
	return &c.sets[(h>>40)&c.mask]
}

func (c *hotCache[T]) get(h uint64, key string) (T, bool) {
	s := c.set(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.ways {
		w := &s.ways[i]
		if w.used && w.key == key {
			w.ref = true
			return w.obj, true
		}
	}
	var zero T
	return zero, false
}

// put makes obj the hot object of key, replacing the key's previous one or
// evicting the first way not referenced since the hand last passed it.
func (c *hotCache[T]) put(h uint64, key string, obj T) {
	s := c.set(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.ways {
		w := &s.ways[i]
		if w.used && w.key == key {
			w.key, w.obj = key, obj
			return
		}
	}
	for {
		w := &s.ways[s.hand]
		s.hand = (s.hand + 1) % hotWays
		if !w.used || !w.ref {
			*w = hotWay[T]{key: key, obj: obj, used: true}
			return
		}
		w.ref = false
	}
}

func (c *hotCache[T]) remove(h uint64, key string) {
	s := c.set(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.ways {
		if w := &s.ways[i]; w.used && w.key == key {
			*w = hotWay[T]{}
		}
	}
}

func (c *hotCache[T]) clear() {
	for i := range c.sets {
		s := &c.sets[i]
		s.mu.Lock()
		s.ways = [hotWays]hotWay[T]{}
		s.mu.Unlock()
	}
}
