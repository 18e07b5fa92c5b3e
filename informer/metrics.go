package informer

import "github.com/prometheus/client_golang/prometheus"

// collector reports an informer's gauges when scraped; nothing is updated
// on the event path. The informer's name is a constant label, so one
// registry can hold the collectors of many informers.
type collector[T Object] struct {
	s                    *SharedInformer[T]
	objects, bytes, pend *prometheus.Desc
}

func newCollector[T Object](s *SharedInformer[T]) *collector[T] {
	l := prometheus.Labels{"informer": s.opts.Name}
	return &collector[T]{
		s: s,
		objects: prometheus.NewDesc("capstan_informer_cached_objects",
			"Number of objects in the informer's cache.", nil, l),
		bytes: prometheus.NewDesc("capstan_informer_cached_bytes",
			"Approximate encoded size in bytes of the objects in the informer's cache.", nil, l),
		pend: prometheus.NewDesc("capstan_informer_handler_pending",
			"Notifications buffered for an event handler, not yet delivered.", []string{"handler"}, l),
	}
}

func (c *collector[T]) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.objects
	ch <- c.bytes
	ch <- c.pend
}

func (c *collector[T]) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ch <- prometheus.MustNewConstMetric(c.objects, prometheus.GaugeValue, float64(s.Len()))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.ApproxBytes()))
	s.hmu.RLock()
	ls := append([]*listener[T](nil), s.listeners...)
	s.hmu.RUnlock()
	for _, l := range ls {
		ch <- prometheus.MustNewConstMetric(c.pend, prometheus.GaugeValue, float64(l.len()), l.name)
	}
}
