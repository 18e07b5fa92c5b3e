package informer

import (
	"bytes"
	"io"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	restclientwatch "k8s.io/client-go/rest/watch"
)

// watchStream encodes events as a kube-apiserver protobuf watch stream:
// length-delimited frames of WatchEvent, each embedding its object in the
// protobuf envelope.
func watchStream(t *testing.T, events []watch.Event) []byte {
	t.Helper()
	codecs := serializer.NewCodecFactory(clientgoscheme.Scheme)
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		t.Fatal("no protobuf serializer")
	}
	var buf bytes.Buffer
	fw := info.StreamSerializer.Framer.NewFrameWriter(&buf)
	enc := streaming.NewEncoder(fw, info.StreamSerializer.Serializer)
	for _, ev := range events {
		var raw bytes.Buffer
		if err := info.Serializer.Encode(ev.Object, &raw); err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(&metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: raw.Bytes()}}); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// decodeStream decodes a watch stream as client-go's REST client does,
// with the NegotiatedSerializer ns.
func decodeStream(t *testing.T, ns runtime.NegotiatedSerializer, stream []byte) []watch.Event {
	t.Helper()
	neg := runtime.NewClientNegotiator(ns, corev1.SchemeGroupVersion)
	objDec, streamSer, framer, err := neg.StreamDecoder(runtime.ContentTypeProtobuf, map[string]string{"stream": "watch"})
	if err != nil {
		t.Fatal(err)
	}
	d := restclientwatch.NewDecoder(streaming.NewDecoder(framer.NewFrameReader(io.NopCloser(bytes.NewReader(stream))), streamSer), objDec)
	var out []watch.Event
	for {
		typ, obj, err := d.Decode()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, watch.Event{Type: typ, Object: obj})
	}
}

func randomEvents(rng *rand.Rand, n int) []watch.Event {
	types := []watch.EventType{watch.Added, watch.Modified, watch.Deleted, watch.Bookmark}
	var out []watch.Event
	for i := range n {
		meta := metav1.ObjectMeta{Namespace: "ns", Name: "o" + strconv.Itoa(i), ResourceVersion: strconv.Itoa(i + 1),
			Labels: map[string]string{"app": strconv.Itoa(rng.IntN(3))}, CreationTimestamp: metav1.Unix(int64(rng.IntN(1e9)), 0)}
		for range rng.IntN(3) {
			meta.ManagedFields = append(meta.ManagedFields, metav1.ManagedFieldsEntry{
				Manager: "m" + strconv.Itoa(rng.IntN(3)), Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
				Time: &metav1.Time{Time: time.Unix(int64(rng.IntN(1e9)), 0)}, FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}}}`)},
			})
		}
		if rng.IntN(3) == 0 {
			meta.Annotations = map[string]string{"a": "b"}
			meta.Finalizers = []string{"f"}
			meta.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "X", Name: "x", UID: "u"}}
		}
		var obj runtime.Object
		switch rng.IntN(4) {
		case 0:
			obj = &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"k": string(make([]byte, rng.IntN(2000)))}}
		case 1:
			obj = &corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"s": {1, 2, 3, byte(i)}}, Type: corev1.SecretTypeOpaque}
		case 2:
			obj = &corev1.Pod{ObjectMeta: meta, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "c", Image: "img", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
			}}}}
		default:
			obj = &corev1.Event{ObjectMeta: meta, Reason: "R", EventTime: metav1.NewMicroTime(time.Unix(int64(i), 123456000)),
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p"}}
		}
		out = append(out, watch.Event{Type: types[rng.IntN(len(types))], Object: obj})
	}
	st := apierrors.NewResourceExpired("too old").Status()
	out = append(out, watch.Event{Type: watch.Error, Object: &st})
	// The server sends each object with its kind.
	for _, ev := range out {
		gvks, _, err := clientgoscheme.Scheme.ObjectKinds(ev.Object)
		if err != nil {
			panic(err)
		}
		ev.Object.GetObjectKind().SetGroupVersionKind(gvks[0])
	}
	return out
}

// The direct decoders decode a watch stream exactly as client-go's do.
func TestDirectDecodeMatchesClientGo(t *testing.T) {
	codecs := serializer.NewCodecFactory(clientgoscheme.Scheme)
	stock := codecs.WithoutConversion()
	direct := withDirectProtobuf(stock, clientgoscheme.Scheme, false)
	events := randomEvents(rand.New(rand.NewPCG(1, 2)), 200)
	stream := watchStream(t, events)
	want := decodeStream(t, stock, stream)
	got := decodeStream(t, direct, stream)
	if len(got) != len(events) || !reflect.DeepEqual(got, want) {
		t.Fatalf("direct decoding differs from client-go's: got %d events, want %d", len(got), len(want))
	}
	// Without managedFields: the same, with managedFields dropped.
	stripped := decodeStream(t, withDirectProtobuf(stock, clientgoscheme.Scheme, true), stream)
	for i := range want {
		if m, ok := want[i].Object.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
	}
	if !reflect.DeepEqual(stripped, want) {
		for i := range want {
			if !reflect.DeepEqual(stripped[i], want[i]) {
				t.Fatalf("event %d decoded without managedFields:\n got %#v\nwant %#v", i, stripped[i].Object, want[i].Object)
			}
		}
	}
}

func TestCanStripManagedFields(t *testing.T) {
	for _, obj := range []Object{&corev1.ConfigMap{}, &corev1.Pod{}, &corev1.Secret{}, &corev1.Namespace{}, &corev1.Event{}, &metav1.PartialObjectMetadata{}} {
		if !canStripManagedFields(obj) {
			t.Errorf("got %T's managedFields not strippable, want strippable", obj)
		}
	}
	if canStripManagedFields(&widget{}) {
		t.Errorf("got a type without protobuf strippable")
	}
}

// Nothing decoded points into its input (for a watch, the frame the
// stream reader reuses).
func TestDirectDecodeDoesNotAlias(t *testing.T) {
	codecs := serializer.NewCodecFactory(clientgoscheme.Scheme)
	info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	direct := withDirectProtobuf(codecs.WithoutConversion(), clientgoscheme.Scheme, false)
	objDec, _, _, err := runtime.NewClientNegotiator(direct, corev1.SchemeGroupVersion).StreamDecoder(runtime.ContentTypeProtobuf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range randomEvents(rand.New(rand.NewPCG(3, 4)), 100) {
		var raw bytes.Buffer
		if err := info.Serializer.Encode(ev.Object, &raw); err != nil {
			t.Fatal(err)
		}
		obj, err := runtime.Decode(objDec, raw.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		// The direct path decodes it (no fallback to client-go's).
		dp := &directProtobuf{Serializer: info.Serializer, typer: clientgoscheme.Scheme, creater: clientgoscheme.Scheme}
		if _, _, err := dp.decode(raw.Bytes(), nil, nil); err != nil {
			t.Fatalf("object %d (%T): direct decoding: %v", i, ev.Object, err)
		}
		want := obj.DeepCopyObject()
		b := raw.Bytes()
		for j := range b {
			b[j] = 0xff
		}
		if !reflect.DeepEqual(obj, want) {
			t.Fatalf("object %d (%T) changed when its input was overwritten: it aliases the input", i, obj)
		}
	}
}
