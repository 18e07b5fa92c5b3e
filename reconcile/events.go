package reconcile

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// EventRecorder returns a recorder of Kubernetes Events (core/v1) attributed
// to component, e.g. "widget-controller". Events are written from every
// replica (they are not leader-only writes) and aggregated by client-go's
// correlator, so a hot loop does not flood the API server. The recorders
// share one broadcaster, created on first use and shut down when Start
// returns: call Start on any Manager you take a recorder from.
func (m *Manager) EventRecorder(component string) (record.EventRecorder, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events == nil {
		cs, err := kubernetes.NewForConfig(m.raw)
		if err != nil {
			return nil, fmt.Errorf("reconcile: event recorder: %w", err)
		}
		b := record.NewBroadcaster()
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
		m.events = b
	}
	return m.events.NewRecorder(m.opts.Scheme, corev1.EventSource{Component: component}), nil
}

// shutdownEvents flushes and stops the event broadcaster, if any.
func (m *Manager) shutdownEvents() {
	m.mu.Lock()
	b := m.events
	m.events = nil
	m.mu.Unlock()
	if b != nil {
		b.Shutdown()
	}
}
