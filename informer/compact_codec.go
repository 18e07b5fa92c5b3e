package informer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor/direct"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// A compact store keeps each object as one string, its entry:
//
//	flags byte | uvarint len(key) | key | [inline TypeMeta] | encoding
//
// The key is part of the entry so that an object costs one allocation; the
// store's tables, index sets and hot cache hold the key as a substring of
// the entry. Entries are immutable, and must stay so (no buffer reuse):
// decoded objects may alias them (see codec.unmarshalEntry).

// Entry flags.
const (
	// typeMetaMask selects how the decoded object's TypeMeta is restored,
	// for codecs whose encoding does not carry it (protobuf).
	typeMetaMask   = 0b011
	typeMetaNone   = 0b000 // TypeMeta was empty
	typeMetaCommon = 0b001 // the store's common apiVersion and kind
	typeMetaInline = 0b010 // uvarint-prefixed apiVersion and kind follow the key
	// flagPlain: the object could not be encoded; it is kept decoded in the
	// store's plain map and the entry holds only the key.
	flagPlain = 0b100
)

// codec encodes and decodes objects of type T for a compact store.
type codec[T Object] struct {
	name string
	// size, if not nil, returns the exact size of obj's encoding, which
	// marshalTo then writes into a buffer of that size. Otherwise marshal
	// returns a fresh encoding.
	size      func(obj T) int
	marshalTo func(obj T, buf []byte) (int, error)
	marshal   func(obj T) ([]byte, error)
	// unmarshal decodes data, which it must not modify or retain.
	unmarshal func(data []byte) (T, error)
	// unmarshalEntry decodes the encoding in a stored entry. Entries are
	// immutable, so the result may alias data (strings that are
	// substrings of it), which it then keeps alive. Defaults to unmarshal.
	unmarshalEntry func(data string) (T, error)
	// typeMetaInBand: the encoding carries apiVersion and kind itself.
	typeMetaInBand bool
	// protoLabels: the encoding is protobuf with ObjectMeta as field 1, so
	// labels can be read without decoding (checked on a probe object).
	protoLabels bool
}

// protoObject is what generated (gogo) protobuf code gives every built-in
// type.
type protoObject interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
	Unmarshal([]byte) error
}

// newCodec picks the encoding of T: protobuf where T has generated
// protobuf code (built-in types, PartialObjectMetadata), CBOR for
// unstructured objects (it keeps integers and floats apart, as decoded
// JSON does), JSON for other types (such as CRD Go types).
func newCodec[T Object]() (*codec[T], error) {
	rt := reflect.TypeFor[T]()
	if rt.Kind() != reflect.Pointer || rt.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("compact storage needs a pointer-to-struct type, not %v", rt)
	}
	elem := rt.Elem()
	newT := func() T { return reflect.New(elem).Interface().(T) }
	probe := newT()
	switch any(probe).(type) {
	case *unstructured.Unstructured:
		return withEntryDecoder(&codec[T]{
			name:           "cbor",
			typeMetaInBand: true,
			marshal: func(obj T) ([]byte, error) {
				return direct.Marshal(any(obj).(*unstructured.Unstructured).Object)
			},
			unmarshal: func(data []byte) (T, error) {
				var m map[string]any
				if err := direct.Unmarshal(data, &m); err != nil {
					var zero T
					return zero, err
				}
				return any(&unstructured.Unstructured{Object: m}).(T), nil
			},
		}), nil
	case protoObject:
		c := &codec[T]{
			name:      "protobuf",
			size:      func(obj T) int { return any(obj).(protoObject).Size() },
			marshalTo: func(obj T, buf []byte) (int, error) { return any(obj).(protoObject).MarshalToSizedBuffer(buf) },
			unmarshal: func(data []byte) (T, error) {
				obj := newT()
				if err := any(obj).(protoObject).Unmarshal(data); err != nil {
					var zero T
					return zero, err
				}
				return obj, nil
			},
		}
		if _, ok := any(probe).(*corev1.ConfigMap); ok {
			c.unmarshalEntry = func(data string) (T, error) {
				if cm, ok := decodeConfigMapAliased(data); ok {
					return any(cm).(T), nil
				}
				return c.unmarshal(stringBytes(data))
			}
		}
		c.protoLabels = probeProtoLabels(c, newT())
		return withEntryDecoder(c), nil
	}
	return withEntryDecoder(&codec[T]{
		name:           "json",
		typeMetaInBand: true,
		marshal:        func(obj T) ([]byte, error) { return json.Marshal(obj) },
		unmarshal: func(data []byte) (T, error) {
			obj := newT()
			if err := utiljson.Unmarshal(data, obj); err != nil {
				var zero T
				return zero, err
			}
			return obj, nil
		},
	}), nil
}

// withEntryDecoder makes c decode stored entries with unmarshal unless it
// has a decoder of its own for them.
func withEntryDecoder[T Object](c *codec[T]) *codec[T] {
	if c.unmarshalEntry == nil {
		c.unmarshalEntry = func(data string) (T, error) { return c.unmarshal(stringBytes(data)) }
	}
	return c
}

// probeProtoLabels checks that labels read from T's protobuf encoding
// without decoding are the object's labels.
func probeProtoLabels[T Object](c *codec[T], probe T) bool {
	probe.SetName("probe")
	probe.SetNamespace("ns")
	want := map[string]string{"a": "1", "b": "", "long-key.example.com/x": "v"}
	probe.SetLabels(want)
	buf := make([]byte, c.size(probe))
	n, err := c.marshalTo(probe, buf)
	if err != nil || n != len(buf) {
		return false
	}
	var kvs []labelKV
	kvs, ok := scanProtoLabels(bytesString(buf), kvs)
	if !ok || len(kvs) != len(want) {
		return false
	}
	for _, kv := range kvs {
		if v, ok := want[kv.k]; !ok || v != kv.v {
			return false
		}
	}
	return true
}

// bytesString returns b as a string without copying. b must not be
// modified afterwards.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// stringBytes returns s as a byte slice without copying. The slice must not
// be modified; the decoders it is passed to only read it.
func stringBytes(s string) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

var errBadEntry = errors.New("informer: malformed compact entry")

// entryKey returns the key of entry e and the offset of what follows it.
func entryKey(e string) (key string, rest int) {
	klen, n := uvarintString(e[1:])
	if n <= 0 || 1+n+int(klen) > len(e) {
		return "", -1
	}
	start := 1 + n
	return e[start : start+int(klen)], start + int(klen)
}

// uvarintString is binary.Uvarint over a string.
func uvarintString(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// readString reads a uvarint-prefixed string of e at off.
func readString(e string, off int) (string, int, bool) {
	if off >= len(e) {
		return "", off, false
	}
	l, n := uvarintString(e[off:])
	if n <= 0 || off+n+int(l) > len(e) {
		return "", off, false
	}
	return e[off+n : off+n+int(l)], off + n + int(l), true
}

// labelKV is one label read from an encoding.
type labelKV struct{ k, v string }

// scanProtoLabels appends to kvs the labels of the protobuf encoding enc
// (field 1 ObjectMeta, its field 11 labels map), as substrings of enc. It
// reports false if enc is not well-formed protobuf.
func scanProtoLabels(enc string, kvs []labelKV) ([]labelKV, bool) {
	kvs = kvs[:0]
	ok := walkProto(enc, func(field uint64, msg string) bool {
		if field != 1 {
			return true
		}
		return walkProto(msg, func(field uint64, entry string) bool {
			if field != 11 {
				return true
			}
			var kv labelKV
			ok := walkProto(entry, func(field uint64, s string) bool {
				switch field {
				case 1:
					kv.k = s
				case 2:
					kv.v = s
				}
				return true
			})
			kvs = append(kvs, kv)
			return ok
		})
	})
	return kvs, ok
}

// walkProto calls fn for each length-delimited field of the protobuf
// message m, skipping other wire types. It reports false if m is malformed
// or fn returned false.
func walkProto(m string, fn func(field uint64, s string) bool) bool {
	for i := 0; i < len(m); {
		tag, n := uvarintString(m[i:])
		if n <= 0 {
			return false
		}
		i += n
		switch tag & 7 {
		case 0: // varint
			_, n := uvarintString(m[i:])
			if n <= 0 {
				return false
			}
			i += n
		case 1: // fixed64
			i += 8
		case 5: // fixed32
			i += 4
		case 2: // length-delimited
			l, n := uvarintString(m[i:])
			if n <= 0 || uint64(len(m)-i-n) < l {
				return false
			}
			i += n
			if !fn(tag>>3, m[i:i+int(l)]) {
				return false
			}
			i += int(l)
		default: // groups: never produced by generated Kubernetes code
			return false
		}
		if i > len(m) {
			return false
		}
	}
	return true
}

// kvLabels implements labels.Labels over labels read from an encoding.
type kvLabels struct{ kvs []labelKV }

func (l *kvLabels) Has(label string) bool {
	_, ok := l.Lookup(label)
	return ok
}

func (l *kvLabels) Get(label string) string {
	v, _ := l.Lookup(label)
	return v
}

func (l *kvLabels) Lookup(label string) (string, bool) {
	for _, kv := range l.kvs {
		if kv.k == label {
			return kv.v, true
		}
	}
	return "", false
}

// entryBody returns the offset of the encoding in entry e, past the key and
// any inline TypeMeta, or -1 if e is malformed.
func entryBody(e string) int {
	_, off := entryKey(e)
	if off < 0 || e[0]&typeMetaMask != typeMetaInline {
		return off
	}
	var ok bool
	if _, off, ok = readString(e, off); !ok {
		return -1
	}
	if _, off, ok = readString(e, off); !ok {
		return -1
	}
	return off
}
