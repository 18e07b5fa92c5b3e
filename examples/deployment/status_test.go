package deployment

import (
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCalculateStatus(t *testing.T) {
	now := t0
	two := int32(2)
	tests := []struct {
		name       string
		d          *appsv1.Deployment
		newRS      *appsv1.ReplicaSet
		old        []*appsv1.ReplicaSet
		want       appsv1.DeploymentStatus
		wantAvail  corev1.ConditionStatus
		wantReason string
	}{
		{
			name:  "mid rollout",
			d:     testDeployment(3, "1", "1"),
			newRS: withAvailable(testRS("v2", 2, newer), 1),
			old:   []*appsv1.ReplicaSet{testRS("v1", 2, old)},
			want: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 4, UpdatedReplicas: 2, ReadyReplicas: 3,
				AvailableReplicas: 3, UnavailableReplicas: 1, TerminatingReplicas: new(int32)},
			wantAvail: corev1.ConditionTrue, wantReason: ReasonMinimumReplicasAvailable,
		},
		{
			name:  "below minimum availability",
			d:     testDeployment(4, "1", "1"),
			newRS: withAvailable(testRS("v2", 4, newer), 1),
			want: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 4, UpdatedReplicas: 4, ReadyReplicas: 1,
				AvailableReplicas: 1, UnavailableReplicas: 3, TerminatingReplicas: new(int32)},
			wantAvail: corev1.ConditionFalse, wantReason: ReasonMinimumReplicasUnavailable,
		},
		{
			name:  "more available than wanted while scaling down: no negative unavailable",
			d:     testDeployment(1, "1", "0"),
			newRS: testRS("v2", 1, newer),
			old:   []*appsv1.ReplicaSet{withAvailable(testRS("v1", 0, old), 2)},
			want: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 3,
				AvailableReplicas: 3, UnavailableReplicas: 0, TerminatingReplicas: new(int32)},
			wantAvail: corev1.ConditionTrue, wantReason: ReasonMinimumReplicasAvailable,
		},
		{
			name: "terminating replicas summed, collision count kept",
			d: func() *appsv1.Deployment {
				d := testDeployment(2, "1", "0")
				d.Status.CollisionCount = &two
				return d
			}(),
			newRS: func() *appsv1.ReplicaSet {
				rs := testRS("v2", 2, newer)
				rs.Status.TerminatingReplicas = &two
				return rs
			}(),
			want: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2,
				AvailableReplicas: 2, TerminatingReplicas: &two, CollisionCount: &two},
			wantAvail: corev1.ConditionTrue, wantReason: ReasonMinimumReplicasAvailable,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The ReplicaSets in the table report terminatingReplicas as 0
			// unless set: a ReplicaSet controller that reports none.
			for _, rs := range append(tc.old, tc.newRS) {
				if rs.Status.TerminatingReplicas == nil {
					rs.Status.TerminatingReplicas = new(int32)
				}
			}
			got := calculateStatus(append(tc.old, tc.newRS), tc.newRS, tc.d, now)
			c := getCondition(got, appsv1.DeploymentAvailable)
			if c == nil || c.Status != tc.wantAvail || c.Reason != tc.wantReason {
				t.Fatalf("got Available condition %+v, want %s/%s", c, tc.wantAvail, tc.wantReason)
			}
			got.Conditions = nil
			if got.ObservedGeneration != tc.want.ObservedGeneration || got.Replicas != tc.want.Replicas ||
				got.UpdatedReplicas != tc.want.UpdatedReplicas || got.ReadyReplicas != tc.want.ReadyReplicas ||
				got.AvailableReplicas != tc.want.AvailableReplicas || got.UnavailableReplicas != tc.want.UnavailableReplicas ||
				deref(got.TerminatingReplicas) != deref(tc.want.TerminatingReplicas) || deref(got.CollisionCount) != deref(tc.want.CollisionCount) {
				t.Fatalf("got status %+v, want %+v", got, tc.want)
			}
		})
	}
}

func deref(p *int32) int32 {
	if p == nil {
		return -1
	}
	return *p
}

func TestTerminatingReplicasUnknown(t *testing.T) {
	fresh := testRS("fresh", 0, newer)
	fresh.Status.ObservedGeneration = 0 // never synced: does not count
	silent := testRS("silent", 1, old)  // synced, reports nothing
	if got := terminatingReplicas([]*appsv1.ReplicaSet{fresh}); got == nil || *got != 0 {
		t.Fatalf("got %v for an unsynced ReplicaSet, want 0", got)
	}
	if got := terminatingReplicas([]*appsv1.ReplicaSet{fresh, silent}); got != nil {
		t.Fatalf("got %d, want nil when a synced ReplicaSet does not report it", *got)
	}
}

func TestRolloutStatusProgressing(t *testing.T) {
	deadline := int32(600)
	progressing := func(reason string, status corev1.ConditionStatus, updated time.Time) appsv1.DeploymentCondition {
		ts := metav1.NewTime(updated)
		return appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: status, Reason: reason,
			LastUpdateTime: ts, LastTransitionTime: metav1.NewTime(t0)}
	}
	now := t0.Add(5 * time.Minute)
	tests := []struct {
		name        string
		deadline    *int32
		oldStatus   appsv1.DeploymentStatus
		newRS       *appsv1.ReplicaSet
		old         []*appsv1.ReplicaSet
		wantReason  string // "" means no Progressing condition
		wantStatus  corev1.ConditionStatus
		wantMessage string
		wantUpdated time.Time
		wantTrans   time.Time
		wantCheck   time.Duration // 0: none
	}{
		{
			name:       "complete",
			deadline:   &deadline,
			oldStatus:  appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}},
			newRS:      testRS("foo-v2", 3, newer),
			wantReason: ReasonNewRSAvailable, wantStatus: corev1.ConditionTrue,
			wantMessage: `ReplicaSet "foo-v2" has successfully progressed.`, wantUpdated: now, wantTrans: t0,
		},
		{
			name:     "progress refreshes lastUpdateTime, keeps lastTransitionTime",
			deadline: &deadline,
			oldStatus: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3,
				Conditions: []appsv1.DeploymentCondition{progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}},
			newRS:      testRS("foo-v2", 2, newer),
			old:        []*appsv1.ReplicaSet{testRS("foo-v1", 2, old)},
			wantReason: ReasonReplicaSetUpdated, wantStatus: corev1.ConditionTrue,
			wantMessage: `ReplicaSet "foo-v2" is progressing.`, wantUpdated: now, wantTrans: t0,
		},
		{
			name:     "no progress within the deadline: nothing changes, a check is due",
			deadline: &deadline,
			oldStatus: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3,
				UnavailableReplicas: 1,
				Conditions:          []appsv1.DeploymentCondition{progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}},
			newRS:      withAvailable(testRS("foo-v2", 1, newer), 0),
			old:        []*appsv1.ReplicaSet{testRS("foo-v1", 3, old)},
			wantReason: ReasonReplicaSetUpdated, wantStatus: corev1.ConditionTrue,
			wantUpdated: t0, wantTrans: t0,
			wantCheck: 5*time.Minute + time.Second,
		},
		{
			name:     "no progress past the deadline: timed out",
			deadline: func() *int32 { v := int32(60); return &v }(),
			oldStatus: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3,
				Conditions: []appsv1.DeploymentCondition{progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}},
			newRS:      withAvailable(testRS("foo-v2", 1, newer), 0),
			old:        []*appsv1.ReplicaSet{testRS("foo-v1", 3, old)},
			wantReason: ReasonTimedOut, wantStatus: corev1.ConditionFalse,
			wantMessage: `ReplicaSet "foo-v2" has timed out progressing.`, wantUpdated: now, wantTrans: now,
		},
		{
			name:     "already timed out stays so, no check",
			deadline: func() *int32 { v := int32(60); return &v }(),
			oldStatus: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3,
				UnavailableReplicas: 1,
				Conditions:          []appsv1.DeploymentCondition{progressing(ReasonTimedOut, corev1.ConditionFalse, t0)}},
			newRS:      withAvailable(testRS("foo-v2", 1, newer), 0),
			old:        []*appsv1.ReplicaSet{testRS("foo-v1", 3, old)},
			wantReason: ReasonTimedOut, wantStatus: corev1.ConditionFalse,
			wantUpdated: t0, wantTrans: t0,
		},
		{
			name:       "no deadline: no Progressing condition",
			oldStatus:  appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}},
			newRS:      withAvailable(testRS("foo-v2", 1, newer), 0),
			old:        []*appsv1.ReplicaSet{testRS("foo-v1", 3, old)},
			wantReason: "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := testDeployment(3, "1", "0")
			d.Spec.ProgressDeadlineSeconds = tc.deadline
			d.Status = tc.oldStatus
			for _, rs := range append(tc.old, tc.newRS) {
				rs.Status.TerminatingReplicas = new(int32)
			}
			d.Status.TerminatingReplicas = new(int32)
			// The Available condition as calculateStatus would leave it.
			setCondition(&d.Status, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumReplicasAvailable, "Deployment has minimum availability.", t0))
			st := rolloutStatus(append(tc.old, tc.newRS), tc.newRS, d, now)
			c := getCondition(st, appsv1.DeploymentProgressing)
			if tc.wantReason == "" {
				if c != nil {
					t.Fatalf("got Progressing condition %+v, want none", c)
				}
				return
			}
			if c == nil {
				t.Fatalf("got no Progressing condition, want %s", tc.wantReason)
			}
			if c.Reason != tc.wantReason || c.Status != tc.wantStatus || (tc.wantMessage != "" && c.Message != tc.wantMessage) {
				t.Fatalf("got %s/%s %q, want %s/%s %q", c.Status, c.Reason, c.Message, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
			if !c.LastUpdateTime.Time.Equal(tc.wantUpdated) || !c.LastTransitionTime.Time.Equal(tc.wantTrans) {
				t.Fatalf("got updated %v transitioned %v, want %v %v", c.LastUpdateTime, c.LastTransitionTime, tc.wantUpdated, tc.wantTrans)
			}
			// As syncRolloutStatus does: a check is arranged only when the
			// status does not change (a change is written, and the write
			// brings the next sync).
			var after time.Duration
			ok := false
			if reflect.DeepEqual(d.Status, st) {
				after, ok = progressCheckAfter(d, st, now)
			}
			if ok != (tc.wantCheck > 0) || after != tc.wantCheck {
				t.Fatalf("got progress check after %v (%v), want %v", after, ok, tc.wantCheck)
			}
		})
	}
}

func TestReplicaFailurePromoted(t *testing.T) {
	fail := appsv1.ReplicaSetCondition{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
		Reason: "FailedCreate", Message: "quota exceeded", LastTransitionTime: metav1.NewTime(t0)}
	oldFail := fail
	oldFail.Message = "old quota"
	tests := []struct {
		name    string
		newRS   *appsv1.ReplicaSet
		old     []*appsv1.ReplicaSet
		wantMsg string // "" means no ReplicaFailure condition
	}{
		{name: "new ReplicaSet's failure wins", wantMsg: "quota exceeded",
			newRS: func() *appsv1.ReplicaSet {
				rs := testRS("v2", 1, newer)
				rs.Status.Conditions = []appsv1.ReplicaSetCondition{fail}
				return rs
			}(),
			old: []*appsv1.ReplicaSet{func() *appsv1.ReplicaSet {
				rs := testRS("v1", 1, old)
				rs.Status.Conditions = []appsv1.ReplicaSetCondition{oldFail}
				return rs
			}()}},
		{name: "an old ReplicaSet's failure", wantMsg: "old quota", newRS: testRS("v2", 1, newer),
			old: []*appsv1.ReplicaSet{func() *appsv1.ReplicaSet {
				rs := testRS("v1", 1, old)
				rs.Status.Conditions = []appsv1.ReplicaSetCondition{oldFail}
				return rs
			}()}},
		{name: "none: removed", newRS: testRS("v2", 1, newer)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := testDeployment(2, "1", "0")
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Message: "stale"}}
			st := rolloutStatus(append(tc.old, tc.newRS), tc.newRS, d, t0)
			c := getCondition(st, appsv1.DeploymentReplicaFailure)
			switch {
			case tc.wantMsg == "" && c != nil:
				t.Fatalf("got %+v, want no ReplicaFailure condition", c)
			case tc.wantMsg != "" && (c == nil || c.Message != tc.wantMsg):
				t.Fatalf("got %+v, want message %q", c, tc.wantMsg)
			}
		})
	}
}
