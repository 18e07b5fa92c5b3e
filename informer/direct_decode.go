package informer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The Factory's typed informers read protobuf. client-go's protobuf
// decoders copy each watch event's payload twice before decoding it: into
// WatchEvent.Object.Raw, then into runtime.Unknown.Raw. The decoders here
// parse those two envelopes in place and decode the object straight from
// the frame the stream reader filled, which saves two allocations and
// copies of the object's size per event. Generated protobuf code copies
// every string and byte slice out of its input, so nothing decoded aliases
// the frame (TestDirectDecodeDoesNotAlias checks).

// protobufPrefix starts every protobuf-encoded Kubernetes object.
var protobufPrefix = []byte{0x6b, 0x38, 0x73, 0x00}

// protoUnmarshaler is what generated protobuf code gives every type.
type protoUnmarshaler interface {
	Reset()
	Unmarshal([]byte) error
}

// directNegotiator is a NegotiatedSerializer whose protobuf decoders are
// the direct ones; everything else is its inner serializer's.
type directNegotiator struct {
	runtime.NegotiatedSerializer
	infos []runtime.SerializerInfo
}

// withDirectProtobuf returns ns with direct protobuf decoding for the
// objects of scheme. With stripManagedFields, single objects (not lists)
// are decoded without their metadata.managedFields, which an informer
// would drop anyway: it is often the largest part of the metadata to
// decode. Use it only for types whose encoding passes
// canStripManagedFields.
func withDirectProtobuf(ns runtime.NegotiatedSerializer, scheme *runtime.Scheme, stripManagedFields bool) runtime.NegotiatedSerializer {
	infos := append([]runtime.SerializerInfo(nil), ns.SupportedMediaTypes()...)
	for i, info := range infos {
		if info.MediaType != runtime.ContentTypeProtobuf || info.Serializer == nil || info.StreamSerializer == nil {
			continue
		}
		info.Serializer = &directProtobuf{Serializer: info.Serializer, typer: scheme, creater: scheme, stripManagedFields: stripManagedFields}
		stream := *info.StreamSerializer
		stream.Serializer = &directWatchEvent{Serializer: stream.Serializer}
		info.StreamSerializer = &stream
		infos[i] = info
	}
	return &directNegotiator{NegotiatedSerializer: ns, infos: infos}
}

func (d *directNegotiator) SupportedMediaTypes() []runtime.SerializerInfo { return d.infos }

// directWatchEvent decodes the frames of a protobuf watch stream into
// *metav1.WatchEvent, with Object.Raw pointing into the frame. The frame
// is valid until the next one is read, which is after the event's object
// has been decoded (client-go's rest/watch.Decoder does both in turn).
type directWatchEvent struct {
	runtime.Serializer // encoding and other targets
}

func (d *directWatchEvent) Decode(data []byte, gvk *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	ev, ok := into.(*metav1.WatchEvent)
	if !ok || len(data) == 0 {
		return d.Serializer.Decode(data, gvk, into)
	}
	*ev = metav1.WatchEvent{}
	ok = walkProtoBytes(data, func(field uint64, b []byte) bool {
		switch field {
		case 1:
			ev.Type = watchEventType(b)
		case 2: // RawExtension
			return walkProtoBytes(b, func(field uint64, raw []byte) bool {
				if field == 1 {
					ev.Object.Raw = raw
				}
				return true
			})
		}
		return true
	})
	if !ok {
		// Let the generated code report what is wrong.
		return d.Serializer.Decode(data, gvk, into)
	}
	return ev, &schema.GroupVersionKind{}, nil
}

// watchEventType returns the constant for a known event type, so decoding
// one allocates nothing.
func watchEventType(b []byte) string {
	for _, t := range [...]string{"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"} {
		if string(b) == t {
			return t
		}
	}
	return string(b)
}

// directProtobuf decodes protobuf-encoded objects (prefix, then a
// runtime.Unknown envelope) without copying the envelope's payload.
type directProtobuf struct {
	runtime.Serializer // encoding, and decoding what is not handled here
	typer              runtime.ObjectTyper
	creater            runtime.ObjectCreater
	// last caches the last envelope's apiVersion and kind, so decoding a
	// stream of one kind allocates no strings for them.
	last atomic.Pointer[typeMetaCache]
	// stripManagedFields: see withDirectProtobuf.
	stripManagedFields bool
	scratch            sync.Pool // of *[]byte, for encodings without managedFields
}

type typeMetaCache struct {
	apiVersion, kind string
	gvk              schema.GroupVersionKind
}

var errNotDirect = errors.New("not handled by the direct decoder")

func (d *directProtobuf) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	obj, gvk, err := d.decode(data, defaults, into)
	if errors.Is(err, errNotDirect) {
		return d.Serializer.Decode(data, defaults, into)
	}
	return obj, gvk, err
}

func (d *directProtobuf) decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if _, ok := into.(*runtime.Unknown); ok || len(data) <= len(protobufPrefix) || !bytes.Equal(data[:len(protobufPrefix)], protobufPrefix) {
		return nil, nil, errNotDirect
	}
	var apiVersion, kind, raw []byte
	plain := true // no content encoding or type: raw is the object
	ok := walkProtoBytes(data[len(protobufPrefix):], func(field uint64, b []byte) bool {
		switch field {
		case 1: // TypeMeta
			return walkProtoBytes(b, func(field uint64, s []byte) bool {
				switch field {
				case 1:
					apiVersion = s
				case 2:
					kind = s
				}
				return true
			})
		case 2:
			raw = b
		case 3, 4: // contentEncoding, contentType
			if len(b) > 0 {
				plain = false
			}
		}
		return true
	})
	if !ok || !plain {
		return nil, nil, errNotDirect
	}
	// As the protobuf serializer does.
	actual := d.gvk(apiVersion, kind)
	copyKindDefaults(&actual, defaults)
	if into != nil {
		types, _, err := d.typer.ObjectKinds(into)
		if err != nil {
			return nil, nil, errNotDirect
		}
		copyKindDefaults(&actual, &types[0])
		if actual.Version == "" && actual.Group == "" {
			actual.Group = types[0].Group
		}
	}
	if actual.Kind == "" || actual.Version == "" {
		return nil, nil, errNotDirect // the serializer's errors say it best
	}
	obj, err := runtime.UseOrCreateObject(d.typer, d.creater, actual, into)
	if err != nil {
		return nil, &actual, err
	}
	u, ok := obj.(protoUnmarshaler)
	if !ok {
		return nil, nil, errNotDirect
	}
	u.Reset()
	if d.stripManagedFields && actual.Kind != "Status" && !strings.HasSuffix(actual.Kind, "List") {
		bp, _ := d.scratch.Get().(*[]byte)
		if bp == nil {
			bp = new([]byte)
		}
		if stripped, ok := stripManagedFields(raw, (*bp)[:0]); ok {
			raw, *bp = stripped, stripped
		}
		defer d.scratch.Put(bp)
	}
	if err := u.Unmarshal(raw); err != nil {
		return nil, &actual, fmt.Errorf("decoding %s: %w", actual.Kind, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(actual)
	return obj, &actual, nil
}

// gvk parses an envelope's apiVersion and kind, reusing the strings of the
// previous envelope when they are the same.
func (d *directProtobuf) gvk(apiVersion, kind []byte) schema.GroupVersionKind {
	if c := d.last.Load(); c != nil && string(apiVersion) == c.apiVersion && string(kind) == c.kind {
		return c.gvk
	}
	c := &typeMetaCache{apiVersion: string(apiVersion), kind: string(kind)}
	c.gvk = schema.FromAPIVersionAndKind(c.apiVersion, c.kind)
	d.last.Store(c)
	return c.gvk
}

// stripManagedFields appends to buf the protobuf encoding of an object
// (ObjectMeta as field 1) without metadata.managedFields (ObjectMeta field
// 17), and reports true; or reports false, if there are none to strip or
// the encoding is not what it expects.
func stripManagedFields(obj, buf []byte) ([]byte, bool) {
	const metadataTag, managedFieldsTag = 1<<3 | 2, 17<<3 | 2
	// Find the metadata field.
	var metaStart, metaEnd, fieldStart int
	found := false
	for i := 0; i < len(obj) && !found; {
		start := i
		tag, n := uvarintString(bytesString(obj[i:]))
		if n <= 0 || tag&7 != 2 {
			return nil, false // generated code writes metadata first
		}
		i += n
		l, n := uvarintString(bytesString(obj[i:]))
		if n <= 0 || uint64(len(obj)-i-n) < l {
			return nil, false
		}
		i += n
		if tag == metadataTag {
			fieldStart, metaStart, metaEnd, found = start, i, i+int(l), true
		}
		i += int(l)
	}
	if !found {
		return nil, false
	}
	// Keep every metadata field but managedFields.
	meta := obj[metaStart:metaEnd]
	var keep [][2]int
	stripped := false
	for i := 0; i < len(meta); {
		start := i
		tag, n := uvarintString(bytesString(meta[i:]))
		if n <= 0 {
			return nil, false
		}
		i += n
		switch tag & 7 {
		case 0:
			_, n := uvarintString(bytesString(meta[i:]))
			if n <= 0 {
				return nil, false
			}
			i += n
		case 2:
			l, n := uvarintString(bytesString(meta[i:]))
			if n <= 0 || uint64(len(meta)-i-n) < l {
				return nil, false
			}
			i += n + int(l)
		default: // ObjectMeta has no fixed-width fields
			return nil, false
		}
		if tag == managedFieldsTag {
			stripped = true
			continue
		}
		if k := len(keep); k > 0 && keep[k-1][1] == start {
			keep[k-1][1] = i
		} else {
			keep = append(keep, [2]int{start, i})
		}
	}
	if !stripped {
		return nil, false
	}
	metaLen := 0
	for _, r := range keep {
		metaLen += r[1] - r[0]
	}
	buf = append(buf, obj[:fieldStart]...)
	buf = binary.AppendUvarint(buf, metadataTag)
	buf = binary.AppendUvarint(buf, uint64(metaLen))
	for _, r := range keep {
		buf = append(buf, meta[r[0]:r[1]]...)
	}
	return append(buf, obj[metaEnd:]...), true
}

// canStripManagedFields reports whether obj's protobuf encoding has its
// metadata.managedFields where stripManagedFields looks (checked on a
// probe of obj's type: obj is modified).
func canStripManagedFields(obj Object) bool {
	m, ok := obj.(interface {
		Marshal() ([]byte, error)
		protoUnmarshaler
	})
	if !ok {
		return false
	}
	obj.SetName("probe")
	obj.SetLabels(map[string]string{"a": "b"})
	obj.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "m", Operation: metav1.ManagedFieldsOperationApply}})
	enc, err := m.Marshal()
	if err != nil {
		return false
	}
	stripped, ok := stripManagedFields(enc, nil)
	if !ok {
		return false
	}
	m.Reset()
	if err := m.Unmarshal(stripped); err != nil {
		return false
	}
	return obj.GetName() == "probe" && obj.GetLabels()["a"] == "b" && len(obj.GetManagedFields()) == 0
}

// copyKindDefaults is the protobuf serializer's defaulting of a decoded
// kind.
func copyKindDefaults(dst, src *schema.GroupVersionKind) {
	if src == nil {
		return
	}
	if dst.Kind == "" {
		dst.Kind = src.Kind
	}
	if dst.Version == "" && src.Version != "" {
		dst.Group = src.Group
		dst.Version = src.Version
	}
}

// walkProtoBytes is walkProto over a byte slice: fn gets each
// length-delimited field as a subslice of m.
func walkProtoBytes(m []byte, fn func(field uint64, b []byte) bool) bool {
	return walkProto(bytesString(m), func(field uint64, s string) bool {
		return fn(field, stringBytes(s))
	})
}
