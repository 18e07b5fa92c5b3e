package deployment

import (
	"encoding/binary"
	"hash/fnv"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/dump"
)

// ComputeHash returns the pod-template-hash of template: the value of the
// pod-template-hash label and the suffix of the ReplicaSet's name
// (<deployment>-<hash>). It is kube-controller-manager's ComputeHash, bit
// for bit: FNV-32a over the spew dump of the template (k8s.io/utils/dump's
// ForHash, the format kcm hashes), followed, when collisionCount is not
// nil, by its value as four little-endian bytes and four zero bytes, and the
// decimal sum mapped to safe characters with rand.SafeEncodeString.
//
// The dump covers every field of corev1.PodTemplateSpec, so the hash is
// stable only for one k8s.io/api version: this package and kcm v1.37 agree
// because they share k8s.io/api v0.37. The template is hashed as given; a
// Deployment's template as the API server stores it (defaults applied) is
// what the controller hashes.
func ComputeHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	// The hash is of the value, not the pointer: kcm dumps *template.
	_, _ = h.Write([]byte(dump.ForHash(*template)))
	if collisionCount != nil {
		var b [8]byte
		binary.LittleEndian.PutUint32(b[:4], uint32(*collisionCount))
		_, _ = h.Write(b[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}
