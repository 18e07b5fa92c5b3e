package deployment

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestNewRSReplicas(t *testing.T) {
	tests := []struct {
		name  string
		d     *appsv1.Deployment
		old   []*appsv1.ReplicaSet
		newRS *appsv1.ReplicaSet
		pods  podCounts
		// undeleted defaults to pods (nothing being deleted).
		undeleted podCounts
		want      int32
		wantErr   bool
	}{
		{name: "integer surge", d: testDeployment(10, "2", "0"),
			old: []*appsv1.ReplicaSet{testRS("v1", 10, old)}, newRS: testRS("v2", 0, newer), want: 2},
		{name: "percent surge rounds up: 25% of 10 is 3", d: testDeployment(10, "25%", "25%"),
			old: []*appsv1.ReplicaSet{testRS("v1", 10, old)}, newRS: testRS("v2", 0, newer), want: 3},
		{name: "never above spec.replicas", d: testDeployment(3, "5", "0"),
			old: []*appsv1.ReplicaSet{testRS("v1", 1, old)}, newRS: testRS("v2", 2, newer), want: 3},
		{name: "at the surge limit: unchanged", d: testDeployment(4, "1", "1"),
			old: []*appsv1.ReplicaSet{testRS("v1", 3, old)}, newRS: testRS("v2", 2, newer), want: 2},
		{name: "room freed by old scale-down", d: testDeployment(4, "1", "1"),
			old: []*appsv1.ReplicaSet{testRS("v1", 1, old)}, newRS: testRS("v2", 2, newer), want: 4},
		{name: "terminating pods of an old ReplicaSet hold their place", d: testDeployment(3, "1", "0"),
			old: []*appsv1.ReplicaSet{testRS("v1", 2, old)}, newRS: testRS("v2", 1, newer),
			pods: podCounts{"v1-uid": 3, "v2-uid": 1}, want: 1},
		{name: "terminating pods gone: room again", d: testDeployment(3, "1", "0"),
			old: []*appsv1.ReplicaSet{testRS("v1", 2, old)}, newRS: testRS("v2", 1, newer),
			pods: podCounts{"v1-uid": 2, "v2-uid": 1}, want: 2},
		{name: "new ReplicaSet's pending pods count no more than its size", d: testDeployment(3, "1", "0"),
			old: []*appsv1.ReplicaSet{testRS("v1", 2, old)}, newRS: testRS("v2", 1, newer),
			pods: podCounts{"v1-uid": 2, "v2-uid": 0}, want: 2},
		{name: "old pods not yet deleted: the step waits for all of them", d: testDeployment(100, "25", "25"),
			old: []*appsv1.ReplicaSet{testRS("v1", 75, old)}, newRS: testRS("v2", 25, newer),
			pods: podCounts{"v1-uid": 90, "v2-uid": 25}, want: 25},
		{name: "old pods all deleted but still terminating: grow into the room there is", d: testDeployment(100, "25", "25"),
			old: []*appsv1.ReplicaSet{testRS("v1", 75, old)}, newRS: testRS("v2", 25, newer),
			pods: podCounts{"v1-uid": 90, "v2-uid": 25}, undeleted: podCounts{"v1-uid": 75, "v2-uid": 25}, want: 35},
		{name: "old pods all gone: the whole step", d: testDeployment(100, "25", "25"),
			old: []*appsv1.ReplicaSet{testRS("v1", 75, old)}, newRS: testRS("v2", 25, newer),
			pods: podCounts{"v1-uid": 75, "v2-uid": 25}, want: 50},
		{name: "deletions pending but the room already completes the rollout", d: testDeployment(10, "5", "0"),
			old: []*appsv1.ReplicaSet{testRS("v1", 0, old)}, newRS: testRS("v2", 8, newer),
			pods: podCounts{"v1-uid": 3, "v2-uid": 8}, want: 10},
		{name: "recreate takes every replica", d: recreate(testDeployment(5, "", "")),
			old: []*appsv1.ReplicaSet{testRS("v1", 0, old)}, newRS: testRS("v2", 0, newer), want: 5},
		{name: "unknown strategy", d: func() *appsv1.Deployment {
			d := testDeployment(1, "", "")
			d.Spec.Strategy.Type = "BlueGreen"
			return d
		}(), newRS: testRS("v2", 0, newer), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			all := append(tc.old, tc.newRS)
			undeleted := tc.undeleted
			if undeleted == nil {
				undeleted = tc.pods
			}
			got, err := newRSReplicas(tc.d, all, tc.newRS, tc.pods, undeleted)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("got %d replicas, want %d", got, tc.want)
			}
		})
	}
}

func TestPlanOldScaleDown(t *testing.T) {
	tests := []struct {
		name  string
		d     *appsv1.Deployment
		newRS *appsv1.ReplicaSet
		old   []*appsv1.ReplicaSet
		want  map[string]int32
	}{
		{
			name:  "new pods not available yet: nothing",
			d:     testDeployment(3, "1", "0"),
			newRS: withAvailable(testRS("v2", 1, newer), 0),
			old:   []*appsv1.ReplicaSet{testRS("v1", 3, old)},
			want:  map[string]int32{},
		},
		{
			name:  "one new pod available: one old pod goes",
			d:     testDeployment(3, "1", "0"),
			newRS: testRS("v2", 1, newer),
			old:   []*appsv1.ReplicaSet{testRS("v1", 3, old)},
			want:  map[string]int32{"v1": 2},
		},
		{
			name:  "maxUnavailable lets old pods go before new ones are up",
			d:     testDeployment(4, "0", "2"),
			newRS: withAvailable(testRS("v2", 0, newer), 0),
			old:   []*appsv1.ReplicaSet{testRS("v1", 4, old)},
			want:  map[string]int32{"v1": 2},
		},
		{
			name:  "unhealthy old replicas go first and cost no availability",
			d:     testDeployment(3, "0", "1"),
			newRS: testRS("v2", 0, newer),
			old:   []*appsv1.ReplicaSet{withAvailable(testRS("v1", 3, old), 1)},
			want:  map[string]int32{"v1": 2},
		},
		{
			name:  "unhealthy replicas of several old ReplicaSets, then healthy ones",
			d:     testDeployment(10, "0", "4"),
			newRS: testRS("v3", 2, newer),
			old:   []*appsv1.ReplicaSet{withAvailable(testRS("v2", 4, old), 2), withAvailable(testRS("v1", 4, older), 3)},
			// allPods 10, minAvailable 6, maxScaledDown 4: v1 (oldest) loses
			// its unhealthy one, v2 its two; available 2+3+2=7 > 6: one
			// more from v1.
			want: map[string]int32{"v1": 2, "v2": 2},
		},
		{
			name:  "oldest ReplicaSet shrinks first",
			d:     testDeployment(6, "0", "3"),
			newRS: testRS("v3", 0, newer),
			old:   []*appsv1.ReplicaSet{testRS("v2", 3, old), testRS("v1", 3, older)},
			want:  map[string]int32{"v1": 0},
		},
		{
			name:  "stale status of an old ReplicaSet just scaled down counts at most its size",
			d:     testDeployment(3, "1", "1"),
			newRS: withAvailable(testRS("v2", 2, newer), 1),
			// scaled 3 -> 2 by the last sync; its controller has not
			// deleted the pod nor updated the status yet.
			old:  []*appsv1.ReplicaSet{withAvailable(testRS("v1", 2, old), 3)},
			want: map[string]int32{"v1": 1},
		},
		{
			name:  "no old replicas",
			d:     testDeployment(3, "1", "0"),
			newRS: testRS("v2", 3, newer),
			old:   []*appsv1.ReplicaSet{testRS("v1", 0, old)},
			want:  map[string]int32{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			equalSizes(t, sizes(planOldScaleDown(tc.d, tc.newRS, activeReplicaSets(tc.old))), tc.want)
		})
	}
}

// TestPlanScale covers scaling events, proportional scaling included. The
// cases are kcm's TestScale (sync_test.go): the ReplicaSets carry the
// annotations of the deployment's former size (from), and the expected
// sizes are kcm's.
func TestPlanScale(t *testing.T) {
	type rsSpec struct {
		name string
		size int32
		ts   metav1.Time
	}
	tests := []struct {
		name        string
		to          *appsv1.Deployment
		from        *appsv1.Deployment
		newRS       *rsSpec
		old         []rsSpec
		newAvail    *int32
		desiredOver map[string]int32
		want        map[string]int32
	}{
		{name: "normal scaling event: 10 -> 12", to: testDeployment(12, "", ""), from: testDeployment(10, "", ""),
			newRS: &rsSpec{"v1", 10, newer}, want: map[string]int32{"v1": 12}},
		{name: "normal scaling event: 10 -> 5", to: testDeployment(5, "", ""), from: testDeployment(10, "", ""),
			newRS: &rsSpec{"v1", 10, newer}, want: map[string]int32{"v1": 5}},
		{name: "proportional scaling: 5 -> 10", to: testDeployment(10, "", ""), from: testDeployment(5, "", ""),
			newRS: &rsSpec{"v2", 2, newer}, old: []rsSpec{{"v1", 3, old}}, want: map[string]int32{"v2": 4, "v1": 6}},
		{name: "proportional scaling: 5 -> 3", to: testDeployment(3, "", ""), from: testDeployment(5, "", ""),
			newRS: &rsSpec{"v2", 2, newer}, old: []rsSpec{{"v1", 3, old}}, want: map[string]int32{"v2": 1, "v1": 2}},
		{name: "proportional scaling: 9 -> 4", to: testDeployment(4, "", ""), from: testDeployment(9, "", ""),
			newRS: &rsSpec{"v2", 8, newer}, old: []rsSpec{{"v1", 1, old}}, want: map[string]int32{"v2": 4, "v1": 0}},
		{name: "proportional scaling: 7 -> 10", to: testDeployment(10, "", ""), from: testDeployment(7, "", ""),
			newRS: &rsSpec{"v3", 2, newer}, old: []rsSpec{{"v2", 3, old}, {"v1", 2, older}},
			want: map[string]int32{"v3": 3, "v2": 4, "v1": 3}},
		{name: "proportional scaling: 13 -> 8", to: testDeployment(8, "", ""), from: testDeployment(13, "", ""),
			newRS: &rsSpec{"v3", 2, newer}, old: []rsSpec{{"v2", 8, old}, {"v1", 3, older}},
			want: map[string]int32{"v3": 1, "v2": 5, "v1": 2}},
		{name: "leftover distribution: 3 -> 4 goes to the newest", to: testDeployment(4, "", ""), from: testDeployment(3, "", ""),
			newRS: &rsSpec{"v3", 1, newer}, old: []rsSpec{{"v2", 1, old}, {"v1", 1, older}},
			want: map[string]int32{"v3": 2, "v2": 1, "v1": 1}},
		{name: "leftover distribution: 3 -> 2 comes from the oldest", to: testDeployment(2, "", ""), from: testDeployment(3, "", ""),
			newRS: &rsSpec{"v3", 1, newer}, old: []rsSpec{{"v2", 1, old}, {"v1", 1, older}},
			want: map[string]int32{"v3": 1, "v2": 1, "v1": 0}},
		{name: "proportional scaling (no new rs): 4 -> 5", to: testDeployment(5, "", ""), from: testDeployment(4, "", ""),
			old: []rsSpec{{"v2", 2, old}, {"v1", 2, older}}, want: map[string]int32{"v2": 3, "v1": 2}},
		{name: "proportional scaling: 6 -> 0", to: testDeployment(0, "", ""), from: testDeployment(6, "", ""),
			newRS: &rsSpec{"v3", 3, newer}, old: []rsSpec{{"v2", 2, old}, {"v1", 1, older}},
			want: map[string]int32{"v3": 0, "v2": 0, "v1": 0}},
		{name: "nothing active: the newest takes all", to: testDeployment(6, "", ""), from: testDeployment(6, "", ""),
			newRS: &rsSpec{"v3", 0, newer}, old: []rsSpec{{"v2", 0, old}, {"v1", 0, older}},
			want: map[string]int32{"v3": 6}},
		{name: "stale desired annotation: sizes refreshed, kept", to: testDeployment(5, "", ""), from: testDeployment(5, "", ""),
			newRS: &rsSpec{"v3", 2, newer}, old: []rsSpec{{"v2", 2, old}, {"v1", 1, older}},
			desiredOver: map[string]int32{"v2": 3},
			want:        map[string]int32{"v3": 2, "v2": 2, "v1": 1}},
		{name: "deployment with surge pods: 10 -> 20", to: testDeployment(20, "2", ""), from: testDeployment(10, "2", ""),
			newRS: &rsSpec{"v2", 6, newer}, old: []rsSpec{{"v1", 6, old}}, want: map[string]int32{"v2": 11, "v1": 11}},
		{name: "change both surge and size", to: testDeployment(50, "6", ""), from: testDeployment(10, "3", ""),
			newRS: &rsSpec{"v2", 5, newer}, old: []rsSpec{{"v1", 8, old}}, want: map[string]int32{"v2": 22, "v1": 34}},
		{name: "saturated but broken new ReplicaSet does not touch old pods", to: testDeployment(2, "1", "1"), from: testDeployment(2, "1", "1"),
			newRS: &rsSpec{"v2", 2, newer}, newAvail: new(int32), old: []rsSpec{{"v1", 1, old}},
			want: map[string]int32{"v2": 2, "v1": 1}},
		{name: "saturated new ReplicaSet: old ones go to zero", to: testDeployment(2, "1", "1"), from: testDeployment(2, "1", "1"),
			newRS: &rsSpec{"v2", 2, newer}, old: []rsSpec{{"v1", 1, old}},
			want: map[string]int32{"v1": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			annotate := func(rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
				desired := replicas(tc.from)
				if v, ok := tc.desiredOver[rs.Name]; ok {
					desired = v
				}
				setReplicasAnnotations(rs, desired, desired+maxSurge(tc.from))
				return rs
			}
			var newRS *appsv1.ReplicaSet
			if tc.newRS != nil {
				newRS = annotate(testRS(tc.newRS.name, tc.newRS.size, tc.newRS.ts))
				if tc.newAvail != nil {
					withAvailable(newRS, *tc.newAvail)
				}
			}
			var oldRSs []*appsv1.ReplicaSet
			for _, o := range tc.old {
				oldRSs = append(oldRSs, annotate(testRS(o.name, o.size, o.ts)))
			}
			equalSizes(t, sizes(planScale(tc.to, newRS, oldRSs)), tc.want)
		})
	}
}

func TestOldPodsRunning(t *testing.T) {
	newRS := testRS("v2", 0, newer)
	tests := []struct {
		name  string
		old   []*appsv1.ReplicaSet
		pods  podCounts
		newRS *appsv1.ReplicaSet
		want  bool
	}{
		{name: "old ReplicaSet still reports replicas", old: []*appsv1.ReplicaSet{testRS("v1", 2, old)}, newRS: newRS, want: true},
		{name: "old pod still terminating", old: []*appsv1.ReplicaSet{testRS("v1", 0, old)},
			pods: podCounts{"v1-uid": 1}, newRS: newRS, want: true},
		{name: "only new pods", old: []*appsv1.ReplicaSet{testRS("v1", 0, old)},
			pods: podCounts{"v1-uid": 0, "v2-uid": 3}, newRS: newRS, want: false},
		{name: "no new ReplicaSet yet and no old pods", old: []*appsv1.ReplicaSet{testRS("v1", 0, old)},
			pods: podCounts{"v1-uid": 0}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := oldPodsRunning(tc.newRS, tc.old, tc.pods); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCountPods(t *testing.T) {
	ctrl := func(uid string) []metav1.OwnerReference {
		yes := true
		return []metav1.OwnerReference{{Kind: "ReplicaSet", Name: uid, UID: types.UID(uid), Controller: &yes}}
	}
	now := metav1.NewTime(t0)
	pods := []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "running", OwnerReferences: ctrl("v1-uid")}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		{ObjectMeta: metav1.ObjectMeta{Name: "terminating", OwnerReferences: ctrl("v1-uid"), DeletionTimestamp: &now}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		{ObjectMeta: metav1.ObjectMeta{Name: "pending", OwnerReferences: ctrl("v2-uid")}, Status: corev1.PodStatus{Phase: corev1.PodPending}},
		{ObjectMeta: metav1.ObjectMeta{Name: "done", OwnerReferences: ctrl("v1-uid")}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}},
		{ObjectMeta: metav1.ObjectMeta{Name: "failed", OwnerReferences: ctrl("v2-uid")}, Status: corev1.PodStatus{Phase: corev1.PodFailed}},
		{ObjectMeta: metav1.ObjectMeta{Name: "foreign", OwnerReferences: ctrl("other-uid")}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		{ObjectMeta: metav1.ObjectMeta{Name: "orphan"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
	}
	got, undeleted := countPods(pods, []*appsv1.ReplicaSet{testRS("v1", 0, old), testRS("v2", 0, newer)})
	want := podCounts{"v1-uid": 2, "v2-uid": 1}
	if len(got) != len(want) || got["v1-uid"] != 2 || got["v2-uid"] != 1 {
		t.Fatalf("unfinished: got %v, want %v", got, want)
	}
	want = podCounts{"v1-uid": 1, "v2-uid": 1}
	if len(undeleted) != len(want) || undeleted["v1-uid"] != 1 || undeleted["v2-uid"] != 1 {
		t.Fatalf("undeleted: got %v, want %v", undeleted, want)
	}
}
