package informer_test

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/capstan-io/capstan/informer"
	"github.com/capstan-io/capstan/informer/informertest"
)

// An informer fed by the in-memory API server of package informertest.
func Example() {
	src := informertest.NewSource[*corev1.ConfigMap](informertest.Options{})
	_, _ = src.Create(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "settings", Labels: map[string]string{"tier": "front"}}})

	inf, err := informer.New[*corev1.ConfigMap](src, informer.Options[*corev1.ConfigMap]{})
	if err != nil {
		panic(err)
	}
	events := make(chan string, 10)
	_, _ = inf.AddHandler(informer.HandlerFuncs[*corev1.ConfigMap]{
		AddFunc: func(cm *corev1.ConfigMap, initial bool) {
			events <- fmt.Sprintf("added %s/%s (initial list: %v)", cm.Namespace, cm.Name, initial)
		},
		DeleteFunc: func(cm *corev1.ConfigMap, finalStateUnknown bool) {
			events <- fmt.Sprintf("deleted %s/%s (final state unknown: %v)", cm.Namespace, cm.Name, finalStateUnknown)
		},
	}, informer.HandlerOptions{})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- inf.Run(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		panic(err)
	}
	fmt.Println(<-events)

	created, _ := src.Create(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "flags"}})
	fmt.Println(<-events)
	// Read your own write: wait until the cache has caught up with it.
	_ = inf.WaitForResourceVersion(ctx, created.ResourceVersion)
	var names []string
	for _, cm := range inf.Lister().ListNamespace("web", labels.Everything()) {
		names = append(names, cm.Name)
	}
	sort.Strings(names)
	fmt.Println("cached in web:", names)

	_ = src.Delete("web", "settings")
	fmt.Println(<-events)

	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// added web/settings (initial list: true)
	// added web/flags (initial list: false)
	// cached in web: [flags settings]
	// deleted web/settings (final state unknown: false)
	// run: <nil>
}
