package informer

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// decodeConfigMapAliased decodes the protobuf encoding of a ConfigMap as
// (*corev1.ConfigMap).Unmarshal does, without copying strings: every
// string of the result (names, labels, annotations, owner references,
// finalizers, data) is a substring of enc, so the result keeps enc alive
// and enc must never change. The compact store's entries are immutable
// strings, which is why only its decode of a stored entry uses this.
// binaryData values are []byte, which their holder may modify: they are
// copied. managedFields entries are decoded by their generated code
// (copying).
//
// It handles what an API server or the compact store writes: the fields of
// ConfigMap and ObjectMeta, in canonical wire types. On anything else (an
// unknown field or wire type, a truncated or malformed encoding, a map
// entry out of the usual shape) it reports false, and the caller decodes
// enc with the generated code, which then also returns the same error for
// malformed input. When it reports true the result is what the generated
// code returns for enc (reflect.DeepEqual; FuzzConfigMapFastDecode checks).
func decodeConfigMapAliased(enc string) (*corev1.ConfigMap, bool) {
	cm := &corev1.ConfigMap{}
	for i := 0; i < len(enc); {
		tag, v, next, ok := pbField(enc, i)
		if !ok {
			return nil, false
		}
		i = next
		switch tag {
		case 1<<3 | 2:
			if !decodeObjectMetaAliased(v, &cm.ObjectMeta) {
				return nil, false
			}
		case 2<<3 | 2:
			k, val, ok := pbMapEntry(v)
			if !ok {
				return nil, false
			}
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[k] = val
		case 3<<3 | 2:
			k, val, ok := pbMapEntry(v)
			if !ok {
				return nil, false
			}
			if cm.BinaryData == nil {
				cm.BinaryData = map[string][]byte{}
			}
			cm.BinaryData[k] = []byte(val) // a copy, never nil
		case 4<<3 | 0:
			b := pbUint(v) != 0
			cm.Immutable = &b
		default:
			return nil, false
		}
	}
	return cm, true
}

// decodeObjectMetaAliased decodes enc into m as (*metav1.ObjectMeta).Unmarshal
// does (merging into what m holds), strings aliasing enc.
func decodeObjectMetaAliased(enc string, m *metav1.ObjectMeta) bool {
	for i := 0; i < len(enc); {
		tag, v, next, ok := pbField(enc, i)
		if !ok {
			return false
		}
		i = next
		switch tag {
		case 1<<3 | 2:
			m.Name = v
		case 2<<3 | 2:
			m.GenerateName = v
		case 3<<3 | 2:
			m.Namespace = v
		case 4<<3 | 2:
			m.SelfLink = v
		case 5<<3 | 2:
			m.UID = types.UID(v)
		case 6<<3 | 2:
			m.ResourceVersion = v
		case 7<<3 | 0:
			m.Generation = int64(pbUint(v))
		case 8<<3 | 2:
			if m.CreationTimestamp, ok = decodeTime(v); !ok {
				return false
			}
		case 9<<3 | 2:
			t, ok := decodeTime(v)
			if !ok {
				return false
			}
			m.DeletionTimestamp = &t
		case 10<<3 | 0:
			s := int64(pbUint(v))
			m.DeletionGracePeriodSeconds = &s
		case 11<<3 | 2, 12<<3 | 2:
			k, val, ok := pbMapEntry(v)
			if !ok {
				return false
			}
			mp := &m.Labels
			if tag == 12<<3|2 {
				mp = &m.Annotations
			}
			if *mp == nil {
				*mp = map[string]string{}
			}
			(*mp)[k] = val
		case 13<<3 | 2:
			var ref metav1.OwnerReference
			if !decodeOwnerReferenceAliased(v, &ref) {
				return false
			}
			m.OwnerReferences = append(m.OwnerReferences, ref)
		case 14<<3 | 2:
			m.Finalizers = append(m.Finalizers, v)
		case 17<<3 | 2:
			var mf metav1.ManagedFieldsEntry
			if mf.Unmarshal(stringBytes(v)) != nil { // copies
				return false
			}
			m.ManagedFields = append(m.ManagedFields, mf)
		default:
			return false
		}
	}
	return true
}

func decodeOwnerReferenceAliased(enc string, r *metav1.OwnerReference) bool {
	for i := 0; i < len(enc); {
		tag, v, next, ok := pbField(enc, i)
		if !ok {
			return false
		}
		i = next
		switch tag {
		case 1<<3 | 2:
			r.Kind = v
		case 3<<3 | 2:
			r.Name = v
		case 4<<3 | 2:
			r.UID = types.UID(v)
		case 5<<3 | 2:
			r.APIVersion = v
		case 6<<3 | 0:
			b := pbUint(v) != 0
			r.Controller = &b
		case 7<<3 | 0:
			b := pbUint(v) != 0
			r.BlockOwnerDeletion = &b
		default:
			return false
		}
	}
	return true
}

// decodeTime decodes a metav1.Time as (*metav1.Time).Unmarshal does: no
// bytes is the zero time, otherwise the seconds in the local time zone
// (nanos are read and dropped).
func decodeTime(enc string) (metav1.Time, bool) {
	if len(enc) == 0 {
		return metav1.Time{}, true
	}
	var sec int64
	for i := 0; i < len(enc); {
		tag, v, next, ok := pbField(enc, i)
		if !ok {
			return metav1.Time{}, false
		}
		i = next
		switch tag {
		case 1<<3 | 0:
			sec = int64(pbUint(v))
		case 2<<3 | 0: // nanos
		default:
			return metav1.Time{}, false
		}
	}
	return metav1.Time{Time: time.Unix(sec, 0).Local()}, true
}

// pbMapEntry decodes a map<string, string> entry: key 1, value 2, either
// missing read as "".
func pbMapEntry(enc string) (k, v string, ok bool) {
	for i := 0; i < len(enc); {
		tag, s, next, ok := pbField(enc, i)
		if !ok {
			return "", "", false
		}
		i = next
		switch tag {
		case 1<<3 | 2:
			k = s
		case 2<<3 | 2:
			v = s
		default:
			return "", "", false
		}
	}
	return k, v, true
}

// pbField reads the field at enc[i:] whose wire type is varint (0) or
// length-delimited (2): its tag, its value (the varint's bytes, for
// pbUint, or the payload) and the offset past it. Other wire types, and
// fields running past enc, report false.
func pbField(enc string, i int) (tag uint64, v string, next int, ok bool) {
	tag, n := uvarintString(enc[i:])
	if n <= 0 {
		return 0, "", 0, false
	}
	i += n
	switch tag & 7 {
	case 0:
		if _, n = uvarintString(enc[i:]); n <= 0 {
			return 0, "", 0, false
		}
		return tag, enc[i : i+n], i + n, true
	case 2:
		l, n := uvarintString(enc[i:])
		if n <= 0 || l > uint64(len(enc)-i-n) {
			return 0, "", 0, false
		}
		i += n
		return tag, enc[i : i+int(l)], i + int(l), true
	}
	return 0, "", 0, false
}

// pbUint is the value of a varint pbField returned.
func pbUint(v string) uint64 {
	x, _ := uvarintString(v)
	return x
}
