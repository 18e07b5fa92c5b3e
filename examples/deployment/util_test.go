package deployment

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestResolveFenceposts(t *testing.T) {
	tests := []struct {
		name                string
		surge, unavailable  *intstr.IntOrString
		desired             int32
		wantSurge, wantUnav int32
		wantErr             bool
	}{
		{name: "integers", surge: intOrStr("2"), unavailable: intOrStr("1"), desired: 10, wantSurge: 2, wantUnav: 1},
		{name: "default 25% of 10: surge rounds up, unavailable down", surge: intOrStr("25%"), unavailable: intOrStr("25%"), desired: 10, wantSurge: 3, wantUnav: 2},
		{name: "25% of 4 is exact", surge: intOrStr("25%"), unavailable: intOrStr("25%"), desired: 4, wantSurge: 1, wantUnav: 1},
		{name: "percentages of 1", surge: intOrStr("25%"), unavailable: intOrStr("25%"), desired: 1, wantSurge: 1, wantUnav: 0},
		{name: "both zero: unavailable becomes 1", surge: intOrStr("0"), unavailable: intOrStr("0"), desired: 5, wantSurge: 0, wantUnav: 1},
		{name: "both round to zero: unavailable becomes 1", surge: intOrStr("0%"), unavailable: intOrStr("10%"), desired: 3, wantSurge: 0, wantUnav: 1},
		{name: "nil values are zero", desired: 5, wantSurge: 0, wantUnav: 1},
		{name: "100% surge", surge: intOrStr("100%"), unavailable: intOrStr("0"), desired: 7, wantSurge: 7, wantUnav: 0},
		{name: "zero replicas", surge: intOrStr("50%"), unavailable: intOrStr("50%"), desired: 0, wantSurge: 0, wantUnav: 1},
		{name: "integer above desired is kept", surge: intOrStr("20"), unavailable: intOrStr("20"), desired: 3, wantSurge: 20, wantUnav: 20},
		{name: "string without percent sign", surge: &intstr.IntOrString{Type: intstr.String, StrVal: "3"}, desired: 3, wantErr: true},
		{name: "malformed percentage", unavailable: &intstr.IntOrString{Type: intstr.String, StrVal: "x%"}, desired: 3, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, u, err := ResolveFenceposts(tc.surge, tc.unavailable, tc.desired)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if s != tc.wantSurge || u != tc.wantUnav {
				t.Fatalf("got surge %d unavailable %d, want %d %d", s, u, tc.wantSurge, tc.wantUnav)
			}
		})
	}
}

func TestMaxSurgeAndUnavailable(t *testing.T) {
	tests := []struct {
		name              string
		d                 *appsv1.Deployment
		wantSurge, wantUn int32
	}{
		{name: "rolling", d: testDeployment(10, "2", "3"), wantSurge: 2, wantUn: 3},
		{name: "unavailable capped at replicas", d: testDeployment(2, "0", "5"), wantSurge: 0, wantUn: 2},
		{name: "zero replicas: no unavailability", d: testDeployment(0, "1", "1"), wantSurge: 1, wantUn: 0},
		{name: "recreate has neither", d: recreate(testDeployment(4, "", "")), wantSurge: 0, wantUn: 0},
		{name: "rolling without parameters takes the API defaults", d: func() *appsv1.Deployment {
			d := testDeployment(10, "", "")
			d.Spec.Strategy.RollingUpdate = nil
			return d
		}(), wantSurge: 3, wantUn: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := maxSurge(tc.d); got != tc.wantSurge {
				t.Errorf("got maxSurge %d, want %d", got, tc.wantSurge)
			}
			if got := maxUnavailable(tc.d); got != tc.wantUn {
				t.Errorf("got maxUnavailable %d, want %d", got, tc.wantUn)
			}
		})
	}
}

func TestRevisions(t *testing.T) {
	bad := testRS("bad", 0, old)
	bad.Annotations[RevisionAnnotation] = "x"
	tests := []struct {
		name          string
		rss           []*appsv1.ReplicaSet
		wantMax, last int64
	}{
		{name: "none", wantMax: 0, last: 0},
		{name: "unannotated counts as 0", rss: []*appsv1.ReplicaSet{testRS("a", 1, old)}, wantMax: 0, last: 0},
		{name: "one", rss: []*appsv1.ReplicaSet{withRevision(testRS("a", 1, old), 4)}, wantMax: 4, last: 0},
		{name: "several, unordered", rss: []*appsv1.ReplicaSet{
			withRevision(testRS("a", 1, old), 3), withRevision(testRS("b", 1, old), 7), withRevision(testRS("c", 1, old), 5),
		}, wantMax: 7, last: 5},
		{name: "unparseable skipped, nil skipped", rss: []*appsv1.ReplicaSet{
			withRevision(testRS("a", 1, old), 2), bad, nil, withRevision(testRS("c", 1, old), 1),
		}, wantMax: 2, last: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := maxRevision(tc.rss); got != tc.wantMax {
				t.Errorf("got max revision %d, want %d", got, tc.wantMax)
			}
			if got := lastRevision(tc.rss); got != tc.last {
				t.Errorf("got last revision %d, want %d", got, tc.last)
			}
		})
	}
}

func TestSetNewReplicaSetAnnotations(t *testing.T) {
	longHistory := strings.Repeat("1234567,", 249) + "1234567" // 1999 characters
	tests := []struct {
		name        string
		deployAnn   map[string]string
		rsAnn       map[string]string
		newRevision int64
		exists      bool
		wantChanged bool
		want        map[string]string
	}{
		{
			name:        "new ReplicaSet gets revision and replica annotations",
			deployAnn:   map[string]string{"team": "a", RevisionAnnotation: "9", corev1.LastAppliedConfigAnnotation: "{}"},
			newRevision: 1,
			wantChanged: true,
			want: map[string]string{"team": "a", RevisionAnnotation: "1",
				DesiredReplicasAnnotation: "4", MaxReplicasAnnotation: "5"},
		},
		{
			name:        "up to date: nothing changes",
			rsAnn:       map[string]string{RevisionAnnotation: "3"},
			newRevision: 3,
			exists:      true,
			want:        map[string]string{RevisionAnnotation: "3"},
		},
		{
			name:        "higher revision than the new one is kept",
			rsAnn:       map[string]string{RevisionAnnotation: "5"},
			newRevision: 3,
			exists:      true,
			want:        map[string]string{RevisionAnnotation: "5"},
		},
		{
			name:        "rollback: old ReplicaSet gets a new revision and remembers the old",
			rsAnn:       map[string]string{RevisionAnnotation: "1"},
			newRevision: 4,
			exists:      true,
			wantChanged: true,
			want:        map[string]string{RevisionAnnotation: "4", RevisionHistoryAnnotation: "1"},
		},
		{
			name:        "second rollback appends to the history",
			rsAnn:       map[string]string{RevisionAnnotation: "4", RevisionHistoryAnnotation: "1"},
			newRevision: 6,
			exists:      true,
			wantChanged: true,
			want:        map[string]string{RevisionAnnotation: "6", RevisionHistoryAnnotation: "1,4"},
		},
		{
			name:        "history longer than 2000 characters drops its oldest entries",
			rsAnn:       map[string]string{RevisionAnnotation: "12345678", RevisionHistoryAnnotation: longHistory},
			newRevision: 12345679,
			exists:      true,
			wantChanged: true,
			want: map[string]string{RevisionAnnotation: "12345679",
				RevisionHistoryAnnotation: strings.Repeat("1234567,", 248) + "1234567,12345678"},
		},
		{
			name:        "unparseable revision is left alone",
			rsAnn:       map[string]string{RevisionAnnotation: "x"},
			newRevision: 2,
			exists:      true,
			want:        map[string]string{RevisionAnnotation: "x"},
		},
		{
			name:        "deployment annotations are copied to an existing ReplicaSet",
			deployAnn:   map[string]string{"kubernetes.io/change-cause": "v2", appsv1.DeprecatedRollbackTo: "1"},
			rsAnn:       map[string]string{RevisionAnnotation: "2"},
			newRevision: 2,
			exists:      true,
			wantChanged: true,
			want:        map[string]string{RevisionAnnotation: "2", "kubernetes.io/change-cause": "v2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := testDeployment(4, "1", "1")
			d.Annotations = tc.deployAnn
			rs := testRS("foo-abc", 0, old)
			rs.Annotations = tc.rsAnn
			if got := setNewReplicaSetAnnotations(d, rs, tc.newRevision, tc.exists); got != tc.wantChanged {
				t.Errorf("got changed %v, want %v", got, tc.wantChanged)
			}
			if len(rs.Annotations) != len(tc.want) {
				t.Fatalf("got annotations %v, want %v", rs.Annotations, tc.want)
			}
			for k, v := range tc.want {
				if rs.Annotations[k] != v {
					t.Fatalf("got annotation %s=%q, want %q", k, rs.Annotations[k], v)
				}
			}
		})
	}
}

func TestSetCondition(t *testing.T) {
	t1 := metav1.NewTime(t0)
	t2 := t0.Add(time.Minute)
	existing := appsv1.DeploymentCondition{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: ReasonNewReplicaSetCreated,
		LastUpdateTime: t1, LastTransitionTime: t1,
	}
	tests := []struct {
		name           string
		set            appsv1.DeploymentCondition
		wantReason     string
		wantUpdate     time.Time
		wantTransition time.Time
	}{
		{
			name:       "same status and reason: unchanged",
			set:        newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSetCreated, "other", t2),
			wantReason: ReasonNewReplicaSetCreated, wantUpdate: t0, wantTransition: t0,
		},
		{
			name:       "same status, new reason: transition time kept",
			set:        newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonReplicaSetUpdated, "m", t2),
			wantReason: ReasonReplicaSetUpdated, wantUpdate: t2, wantTransition: t0,
		},
		{
			name:       "new status: both times new",
			set:        newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonTimedOut, "m", t2),
			wantReason: ReasonTimedOut, wantUpdate: t2, wantTransition: t2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			avail := appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}
			st := appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{existing, avail}}
			setCondition(&st, tc.set)
			if len(st.Conditions) != 2 {
				t.Fatalf("got %d conditions, want 2", len(st.Conditions))
			}
			c := getCondition(st, appsv1.DeploymentProgressing)
			if c.Reason != tc.wantReason || !c.LastUpdateTime.Time.Equal(tc.wantUpdate) || !c.LastTransitionTime.Time.Equal(tc.wantTransition) {
				t.Fatalf("got %s updated %v transitioned %v, want %s %v %v", c.Reason, c.LastUpdateTime, c.LastTransitionTime,
					tc.wantReason, tc.wantUpdate, tc.wantTransition)
			}
		})
	}
}

func TestComplete(t *testing.T) {
	done := appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}
	tests := []struct {
		name string
		mod  func(*appsv1.DeploymentStatus)
		want bool
	}{
		{name: "complete", mod: func(*appsv1.DeploymentStatus) {}, want: true},
		{name: "old replicas left", mod: func(s *appsv1.DeploymentStatus) { s.Replicas = 4 }, want: false},
		{name: "not all updated", mod: func(s *appsv1.DeploymentStatus) { s.UpdatedReplicas = 2 }, want: false},
		{name: "not all available", mod: func(s *appsv1.DeploymentStatus) { s.AvailableReplicas = 2 }, want: false},
		{name: "stale generation", mod: func(s *appsv1.DeploymentStatus) { s.ObservedGeneration = 1 }, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := testDeployment(3, "1", "0")
			d.Generation = 2
			d.Status = done
			tc.mod(&d.Status)
			if got := Complete(d); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReplicaSetName(t *testing.T) {
	long := strings.Repeat("a", 260)
	tests := []struct{ name, deployment, hash, want string }{
		{name: "short", deployment: "web", hash: "5d4f8c9b7", want: "web-5d4f8c9b7"},
		{name: "cut to 253 characters", deployment: long, hash: "5d4f8c9b7", want: long[:243] + "-5d4f8c9b7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := replicaSetName(tc.deployment, tc.hash); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
