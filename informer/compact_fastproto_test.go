package informer

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// randomConfigMap returns a ConfigMap with a random subset of the fields
// the fast decoder handles, empty strings and maps included.
func randomConfigMap(rng *rand.Rand) *corev1.ConfigMap {
	str := func() string {
		switch rng.IntN(6) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("x", rng.IntN(300)) // multi-byte lengths
		}
		b := make([]byte, rng.IntN(20))
		for i := range b {
			b[i] = byte(rng.IntN(256)) // not necessarily UTF-8
		}
		return string(b)
	}
	strMap := func() map[string]string {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return map[string]string{}
		}
		m := map[string]string{}
		for range rng.IntN(6) {
			m[str()] = str()
		}
		return m
	}
	optBool := func() *bool {
		switch rng.IntN(3) {
		case 0:
			return nil
		}
		b := rng.IntN(2) == 0
		return &b
	}
	ts := func() metav1.Time {
		if rng.IntN(4) == 0 {
			return metav1.Time{}
		}
		// Nanos are not encoded (metav1.Time drops them).
		return metav1.NewTime(time.Unix(rng.Int64N(1<<40)-1<<39, rng.Int64N(1e9)))
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:              str(),
			GenerateName:      str(),
			Namespace:         str(),
			SelfLink:          str(),
			UID:               types.UID(str()),
			ResourceVersion:   str(),
			Generation:        rng.Int64() - 1<<62,
			CreationTimestamp: ts(),
			Labels:            strMap(),
			Annotations:       strMap(),
		},
		Data:      strMap(),
		Immutable: optBool(),
	}
	if rng.IntN(3) == 0 {
		t := ts()
		cm.DeletionTimestamp = &t
	}
	if rng.IntN(3) == 0 {
		s := rng.Int64N(1000) - 10
		cm.DeletionGracePeriodSeconds = &s
	}
	for range rng.IntN(3) {
		cm.OwnerReferences = append(cm.OwnerReferences, metav1.OwnerReference{
			APIVersion: str(), Kind: str(), Name: str(), UID: types.UID(str()),
			Controller: optBool(), BlockOwnerDeletion: optBool(),
		})
	}
	for range rng.IntN(3) {
		cm.Finalizers = append(cm.Finalizers, str())
	}
	for range rng.IntN(3) {
		e := metav1.ManagedFieldsEntry{
			Manager: str(), Operation: metav1.ManagedFieldsOperationType(str()), APIVersion: str(),
			FieldsType: str(), Subresource: str(),
		}
		if rng.IntN(2) == 0 {
			t := ts()
			e.Time = &t
		}
		if rng.IntN(2) == 0 {
			e.FieldsV1 = &metav1.FieldsV1{Raw: []byte(`{"f:data":{"f:` + strconv.Itoa(rng.IntN(100)) + `":{}}}`)}
		}
		cm.ManagedFields = append(cm.ManagedFields, e)
	}
	switch rng.IntN(4) {
	case 0:
	case 1:
		cm.BinaryData = map[string][]byte{}
	default:
		cm.BinaryData = map[string][]byte{}
		for range rng.IntN(4) {
			var v []byte
			switch rng.IntN(3) {
			case 0: // nil: no value field
			case 1:
				v = []byte{}
			default:
				v = []byte(str())
			}
			cm.BinaryData[str()] = v
		}
	}
	return cm
}

func marshalConfigMap(t testing.TB, cm *corev1.ConfigMap) []byte {
	t.Helper()
	b, err := cm.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appendField appends a length-delimited field to b.
func appendField(b []byte, field int, payload []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field<<3|2))
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// appendVarintField appends a varint field to b.
func appendVarintField(b []byte, field int, v uint64) []byte {
	b = binary.AppendUvarint(b, uint64(field<<3))
	return binary.AppendUvarint(b, v)
}

var fastTestCodec = func() *codec[*corev1.ConfigMap] {
	c, err := newCodec[*corev1.ConfigMap]()
	if err != nil {
		panic(err)
	}
	return c
}()

// checkConfigMapFastDecode checks that the fast decoder, where it succeeds,
// returns what generated code returns for data, and that the codec's entry
// decoder returns exactly what generated code returns (object or error).
// It reports whether the fast decoder succeeded.
func checkConfigMapFastDecode(t testing.TB, data []byte) bool {
	t.Helper()
	want := &corev1.ConfigMap{}
	wantErr := want.Unmarshal(data)
	in := string(data) // a copy: immutable, as entries are
	got, ok := decodeConfigMapAliased(in)
	if ok {
		if wantErr != nil {
			t.Fatalf("fast decoder succeeded on %q, generated code failed: %v", data, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast decoder on %q:\n got %#v\nwant %#v", data, got, want)
		}
	}
	obj, err := fastTestCodec.unmarshalEntry(in)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("codec error %v, generated code error %v, on %q", err, wantErr, data)
	case err != nil:
		if err.Error() != wantErr.Error() {
			t.Fatalf("codec error %q, generated code error %q, on %q", err, wantErr, data)
		}
		if obj != nil {
			t.Fatalf("codec returned an object with its error")
		}
	case !reflect.DeepEqual(obj, want):
		t.Fatalf("codec on %q:\n got %#v\nwant %#v", data, obj, want)
	}
	return ok
}

func TestConfigMapFastDecodeMatchesGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 3000 {
		cm := randomConfigMap(rng)
		data := marshalConfigMap(t, cm)
		if !checkConfigMapFastDecode(t, data) {
			t.Fatalf("object %d: the fast decoder declined a canonical encoding: %#v", i, cm)
		}
		// Non-canonical but valid: fields repeated and merged, time with
		// nanos, an empty timestamp, empty map entries.
		var extra []byte
		ts, _ := (&metav1.Timestamp{Seconds: rng.Int64N(1 << 35), Nanos: rng.Int32N(1e9)}).Marshal()
		meta := appendField(nil, 8, ts)
		meta = appendField(meta, 9, ts)
		meta = appendField(meta, 11, nil)
		meta = appendVarintField(meta, 7, rng.Uint64())
		extra = appendField(extra, 1, meta)
		extra = appendField(extra, 2, nil)
		extra = appendField(extra, 3, nil)
		extra = appendVarintField(extra, 4, uint64(rng.IntN(3)))
		data = append(data, extra...)
		if !checkConfigMapFastDecode(t, data) {
			t.Fatalf("object %d: the fast decoder declined a valid encoding", i)
		}
	}
}

// Anything malformed or unusual falls back to generated code, with its
// result or error.
func TestConfigMapFastDecodeMalformed(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for range 200 {
		data := marshalConfigMap(t, randomConfigMap(rng))
		for n := range len(data) {
			checkConfigMapFastDecode(t, data[:n])
		}
		for range 50 {
			mut := append([]byte(nil), data...)
			for range 1 + rng.IntN(3) {
				if len(mut) > 0 {
					mut[rng.IntN(len(mut))] = byte(rng.IntN(256))
				}
			}
			checkConfigMapFastDecode(t, mut)
		}
	}
	for _, data := range [][]byte{
		nil,
		{0x0a},             // truncated length
		{0x0a, 0x05, 0x0a}, // length past the end
		{0x0b},             // group start
		{0x0c},             // group end
		{0x00, 0x00},       // field 0
		{0x28, 0x01},       // unknown field 5: generated code skips it
		{0x0d, 1, 2, 3, 4}, // fixed32 ObjectMeta
		{0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // 11-byte varint
		{0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},       // 10 bytes, high bits dropped
		{0x12, 0x02, 0x08, 0x01},                         // map key with wire type 0
		{0x12, 0x04, 0x0a, 0x05, 0x61, 0x62, 0x63, 0x64}, // map key past the entry
		{0x0a, 0x04, 0x42, 0x02, 0x1a, 0x00},             // unknown field in a timestamp
		{0x0a, 0x02, 0x78, 0x00},                         // unknown ObjectMeta field 15
	} {
		checkConfigMapFastDecode(t, data)
	}
}

// Strings alias the entry; binaryData values are copies.
func TestConfigMapFastDecodeAliasing(t *testing.T) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "name", Namespace: "ns", Labels: map[string]string{"app": "web"}},
		Data:       map[string]string{"k": "value"},
		BinaryData: map[string][]byte{"b": []byte("bytes"), "e": {}},
	}
	in := string(marshalConfigMap(t, cm))
	got, ok := decodeConfigMapAliased(in)
	if !ok {
		t.Fatal("the fast decoder declined")
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(in)))
	inEntry := func(p *byte) bool {
		a := uintptr(unsafe.Pointer(p))
		return a >= start && a < start+uintptr(len(in))
	}
	for _, s := range []string{got.Name, got.Namespace, got.Labels["app"], got.Data["k"]} {
		if !inEntry(unsafe.StringData(s)) {
			t.Errorf("%q does not alias the encoding", s)
		}
	}
	b := got.BinaryData["b"]
	if string(b) != "bytes" || inEntry(&b[0]) {
		t.Errorf("binaryData value %q aliases the encoding", b)
	}
	if e := got.BinaryData["e"]; e == nil || len(e) != 0 {
		t.Errorf("empty binaryData value: got %#v, want []byte{}", e)
	}
	b[0] = 'X'
	if !strings.Contains(in, "bytes") {
		t.Errorf("changing a decoded binaryData value changed the encoding")
	}

	// The codec's other decoder copies: its input may be reused.
	buf := []byte(in)
	obj, err := fastTestCodec.unmarshal(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0
	}
	if obj.Name != "name" || obj.Data["k"] != "value" {
		t.Errorf("unmarshal result aliases its input: %#v", obj)
	}
}

// The store decodes ConfigMaps with the fast decoder; what Get returns is
// what was stored.
func TestCompactConfigMapFastDecodeStore(t *testing.T) {
	x, err := NewIndexer(IndexerOptions[*corev1.ConfigMap]{Compact: true, CompactHotObjects: -1})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	want := map[string]*corev1.ConfigMap{}
	for i := range 200 {
		cm := randomConfigMap(rng)
		cm.Namespace, cm.Name = "ns", "cm-"+strconv.Itoa(i)
		cm.ManagedFields = nil
		key := KeyOf(cm)
		x.Set(key, cm)
		// What generated code decodes from the encoding.
		w := &corev1.ConfigMap{}
		if err := w.Unmarshal(marshalConfigMap(t, cm)); err != nil {
			t.Fatal(err)
		}
		want[key] = w
	}
	for key, w := range want {
		got, ok := x.Get(key)
		if !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("Get(%s) = %#v, %v; want %#v", key, got, ok, w)
		}
	}
}

func FuzzConfigMapFastDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 8 {
		f.Add(marshalConfigMap(f, randomConfigMap(rng)))
	}
	f.Add(marshalConfigMap(f, &benchLikeConfigMap))
	f.Add([]byte{0x0a, 0x04, 0x42, 0x02, 0x08, 0x01})
	f.Add([]byte{0x12, 0x04, 0x0a, 0x05, 0x61, 0x62, 0x63, 0x64})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkConfigMapFastDecode(t, data)
	})
}

var benchLikeConfigMap = corev1.ConfigMap{
	ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns-1", Name: "cm-1", ResourceVersion: "2", UID: "uid",
		Labels: map[string]string{"app": "bench"},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "u",
			Controller: new(bool),
		}},
		Finalizers: []string{"f"},
	},
	Data: map[string]string{"payload": strings.Repeat("x", 100)},
}
