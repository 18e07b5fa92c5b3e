package deployment_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/capstan-io/capstan/envtest"
	"github.com/capstan-io/capstan/examples/deployment"
)

// kcmHash is one ReplicaSet kube-controller-manager created: the
// Deployment's template as the API server stored it, its collisionCount,
// and the pod-template-hash kcm gave the ReplicaSet. testdata/kcm-hashes.json
// holds a set of them, recorded by TestHashMatchesKubeControllerManager
// with CAPSTAN_RECORD_KCM_HASHES=1 and checked by TestComputeHashGolden.
type kcmHash struct {
	Name           string                 `json:"name"`
	Template       corev1.PodTemplateSpec `json:"template"`
	CollisionCount *int32                 `json:"collisionCount,omitempty"`
	Hash           string                 `json:"hash"`
}

const kcmHashesFile = "testdata/kcm-hashes.json"

// hashTemplates are the templates of the differential test: a minimal one,
// upstream's hash_test.go pod (resources, probes, env), and one with most
// kinds of fields.
func hashTemplates() map[string]corev1.PodTemplateSpec {
	var cats corev1.PodTemplateSpec
	if err := json.Unmarshal([]byte(upstreamCatsPod), &cats); err != nil {
		panic(err)
	}
	grace := int64(5)
	return map[string]corev1.PodTemplateSpec{
		"minimal": {
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "minimal"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.27"}}},
		},
		"cats": cats,
		"rich": {
			ObjectMeta: metav1.ObjectMeta{
				Labels:      map[string]string{"app": "rich", "tier": "backend"},
				Annotations: map[string]string{"example.com/owner": "team-a"},
			},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", Image: "busybox:1.36", Command: []string{"sh", "-c", "true"}}},
				Containers: []corev1.Container{
					{Name: "app", Image: "registry.example/app:v3", Args: []string{"--port=8080"},
						Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						VolumeMounts: []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}}},
					{Name: "sidecar", Image: "registry.example/proxy:2"},
				},
				Volumes:                       []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				NodeSelector:                  map[string]string{"kubernetes.io/os": "linux"},
				TerminationGracePeriodSeconds: &grace,
				Tolerations:                   []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "rich", Effect: corev1.TaintEffectNoSchedule}},
			},
		},
	}
}

// TestHashMatchesKubeControllerManager runs kube-controller-manager
// v1.37's own Deployment controller on envtest and checks that every
// ReplicaSet it creates is named with ComputeHash's value, collision
// included: a foreign ReplicaSet taking the name of a template's hash
// makes kcm count a collision, and its next name must be ComputeHash's
// with collisionCount 1.
func TestHashMatchesKubeControllerManager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env := envtest.StartForTest(t, envtest.Options{
		BuiltinControllers:     true,
		ControllerManagerFlags: map[string]string{"controllers": "deployment"},
	})
	// Protobuf, as both controllers read: the templates hashed here are
	// decoded the way theirs are.
	cfg := env.Config()
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := "kcm-hash"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var recorded []kcmHash
	for name, tmpl := range hashTemplates() {
		for _, collide := range []bool{false, true} {
			dname := name
			if collide {
				dname += "-collision"
			}
			replicas := int32(0)
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dname},
				Spec: appsv1.DeploymentSpec{
					Replicas: &replicas,
					Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
					Template: tmpl,
					// Paused, kcm creates no ReplicaSet: the name can be
					// taken first.
					Paused: collide,
				},
			}
			d, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating %s: %v", dname, err)
			}
			var wantCollisions *int32
			if collide {
				taken := dname + "-" + deployment.ComputeHash(&d.Spec.Template, nil)
				foreign := &appsv1.ReplicaSet{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: taken},
					Spec: appsv1.ReplicaSetSpec{
						Replicas: &replicas,
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"foreign": "yes"}},
						Template: corev1.PodTemplateSpec{
							ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"foreign": "yes"}},
							Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}},
						},
					},
				}
				if _, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
					t.Fatalf("creating %s: %v", taken, err)
				}
				if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, dname, types.MergePatchType, []byte(`{"spec":{"paused":false}}`), metav1.PatchOptions{}); err != nil {
					t.Fatalf("resuming %s: %v", dname, err)
				}
				one := int32(1)
				wantCollisions = &one
			}
			rs := waitOwnedRS(ctx, t, cs, ns, d.UID)
			hash := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
			if got := deployment.ComputeHash(&d.Spec.Template, wantCollisions); got != hash || rs.Name != dname+"-"+got {
				t.Errorf("%s: kcm named the ReplicaSet %s (pod-template-hash %s), ComputeHash gives %s", dname, rs.Name, hash, got)
			}
			if collide {
				fresh, err := cs.AppsV1().Deployments(ns).Get(ctx, dname, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if c := fresh.Status.CollisionCount; c == nil || *c != 1 {
					t.Errorf("%s: kcm's collisionCount is %v, want 1", dname, c)
				}
			}
			recorded = append(recorded, kcmHash{Name: dname, Template: d.Spec.Template, CollisionCount: wantCollisions, Hash: hash})
		}
	}
	if os.Getenv("CAPSTAN_RECORD_KCM_HASHES") == "1" {
		data, err := json.MarshalIndent(recorded, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(kcmHashesFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(kcmHashesFile, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// waitOwnedRS waits for the ReplicaSet controlled by the Deployment with
// uid.
func waitOwnedRS(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, uid types.UID) *appsv1.ReplicaSet {
	t.Helper()
	for {
		list, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			if ref := metav1.GetControllerOf(&list.Items[i]); ref != nil && ref.UID == uid {
				return &list.Items[i]
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no ReplicaSet of Deployment %s appeared: %v", uid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestComputeHashGolden checks ComputeHash against the hashes kcm v1.37
// gave the templates of testdata/kcm-hashes.json (decoded from JSON, as
// the API server returned them).
func TestComputeHashGolden(t *testing.T) {
	data, err := os.ReadFile(kcmHashesFile)
	if err != nil {
		t.Fatal(err)
	}
	var cases []kcmHash
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no recorded hashes")
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			if got := deployment.ComputeHash(&tc.Template, tc.CollisionCount); got != tc.Hash {
				t.Fatalf("got %s, want kcm's %s", got, tc.Hash)
			}
		})
	}
}

// upstreamCatsPod is the pod template of kcm's
// pkg/controller/deployment/util/hash_test.go, version 0.
const upstreamCatsPod = `{
  "metadata": {"labels": {"app": "cats"}},
  "spec": {
    "containers": [{
      "name": "cats",
      "image": "registry/test/cats:v0.0.0",
      "ports": [{"name": "http", "containerPort": 9077, "protocol": "TCP"}],
      "env": [
        {"name": "DEPLOYMENT_ENVIRONMENT", "value": "cats-stubbed-functional"},
        {"name": "APP_NAME", "value": "cats"}
      ],
      "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
      "livenessProbe": {
        "httpGet": {"path": "/private/status", "port": 9077, "scheme": "HTTP"},
        "initialDelaySeconds": 30, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
      },
      "readinessProbe": {
        "httpGet": {"path": "/private/status", "port": 9077, "scheme": "HTTP"},
        "initialDelaySeconds": 1, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
      },
      "terminationMessagePath": "/dev/termination-log",
      "imagePullPolicy": "IfNotPresent"
    }],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "securityContext": {}
  }
}`
