package kcmbench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// auditPolicy logs every write at Metadata level, once per request (when
// the response is complete), and nothing else. Reads are left out: they
// are not what the benchmark compares, and logging each watch event's
// request would only slow the API server down.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`

// User agents of the two subjects, as prefixes. kube-controller-manager
// gives each controller a client named
// "kube-controller-manager/<version> (<os>/<arch>) kubernetes/<commit>/<controller>";
// controllermanager.NewManager sets "capstan-controller-manager" when the
// config has no user agent of its own.
const (
	agentKCM     = "kube-controller-manager"
	agentCapstan = "capstan-controller-manager"
)

// writeVerbs are the verbs counted as writes.
var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

// auditEvent is the part of an audit.k8s.io/v1 Event the count reads.
type auditEvent struct {
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	UserAgent string `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
}

// writeKey is one kind of write: verb, resource (with "/subresource") and
// the response code (0 when the log has none).
type writeKey struct {
	verb, resource string
	code           int
}

// writeCounts counts writes by kind.
type writeCounts map[writeKey]int

// total is the number of writes, whatever their outcome.
func (w writeCounts) total() int {
	n := 0
	for _, c := range w {
		n += c
	}
	return n
}

// String lists the writes by verb and resource, sorted, with the failed
// ones by code in brackets: "create pods 500, update replicasets/status 7 (409: 2)".
func (w writeCounts) String() string {
	type agg struct {
		n      int
		failed map[int]int
	}
	byCall := map[string]*agg{}
	for k, c := range w {
		name := k.verb + " " + k.resource
		a := byCall[name]
		if a == nil {
			a = &agg{failed: map[int]int{}}
			byCall[name] = a
		}
		a.n += c
		if k.code >= 300 {
			a.failed[k.code] += c
		}
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(byCall)) {
		a := byCall[name]
		s := fmt.Sprintf("%s %d", name, a.n)
		if len(a.failed) > 0 {
			var f []string
			for _, code := range slices.Sorted(maps.Keys(a.failed)) {
				f = append(f, fmt.Sprintf("%d: %d", code, a.failed[code]))
			}
			s += " (" + strings.Join(f, ", ") + ")"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// writeFilter selects the writes counted: those whose user agent starts
// with agentPrefix and that the API server received at or after since.
type writeFilter struct {
	agentPrefix string
	since       time.Time
}

// countWrites adds to counts the writes f selects in an audit log (JSON
// lines, as kube-apiserver's --audit-log-path writes them) and returns the
// bytes of complete lines it read. Only ResponseComplete and Panic events
// count, so a request logged at several stages counts once. A last line
// without its newline is left unread (the API server is still writing it);
// any other unreadable line is an error.
func countWrites(r io.Reader, f writeFilter, counts writeCounts) (int64, error) {
	br := bufio.NewReader(r)
	var read int64
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return read, nil
		}
		if err != nil {
			return read, fmt.Errorf("reading the audit log: %w", err)
		}
		read += int64(len(line))
		var ev auditEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return read, fmt.Errorf("audit log line %d: %w", lineNo, err)
		}
		if ev.Stage != "ResponseComplete" && ev.Stage != "Panic" {
			continue
		}
		if !writeVerbs[ev.Verb] || !strings.HasPrefix(ev.UserAgent, f.agentPrefix) || ev.RequestReceivedTimestamp.Before(f.since) {
			continue
		}
		k := writeKey{verb: ev.Verb}
		if ev.ObjectRef != nil {
			k.resource = ev.ObjectRef.Resource
			if ev.ObjectRef.Subresource != "" {
				k.resource += "/" + ev.ObjectRef.Subresource
			}
		}
		if ev.ResponseStatus != nil {
			k.code = ev.ResponseStatus.Code
		}
		counts[k]++
	}
}

// auditTail counts the writes of an audit log that grows, reading only
// what was appended since its last poll.
type auditTail struct {
	path   string
	filter writeFilter
	off    int64 // bytes of complete lines counted so far
	counts writeCounts
}

func newAuditTail(path string, f writeFilter) *auditTail {
	return &auditTail{path: path, filter: f, counts: writeCounts{}}
}

// poll counts the complete lines appended since the last poll and returns
// the counts so far (the tail's own map: read it, do not keep it across
// polls). A log not yet created counts nothing.
func (t *auditTail) poll() (writeCounts, error) {
	f, err := os.Open(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return t.counts, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return nil, err
	}
	n, err := countWrites(f, t.filter, t.counts)
	t.off += n
	if err != nil {
		return nil, err
	}
	return t.counts, nil
}

// sampleAuditLog holds, in order: a write by kube-controller-manager's
// ReplicaSet controller before the window; one logged at RequestReceived
// too (counted once); a conflict; a read (not a write); a write by another
// client; capstan's writes; an event at Panic stage; and a last line cut
// short.
const sampleAuditLog = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a0","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/b/pods","verb":"create","userAgent":"kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/$Format/replicaset-controller","objectRef":{"resource":"pods","namespace":"b","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-01-02T10:00:00.999999Z","stageTimestamp":"2026-01-02T10:00:01.010000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"RequestReceived","requestURI":"/api/v1/namespaces/b/pods","verb":"create","userAgent":"kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/$Format/replicaset-controller","objectRef":{"resource":"pods","namespace":"b","apiVersion":"v1"},"requestReceivedTimestamp":"2026-01-02T10:00:01.000000Z","stageTimestamp":"2026-01-02T10:00:01.000000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/b/pods","verb":"create","userAgent":"kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/$Format/replicaset-controller","objectRef":{"resource":"pods","namespace":"b","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-01-02T10:00:01.000000Z","stageTimestamp":"2026-01-02T10:00:01.020000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a2","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/b/replicasets/r/status","verb":"update","userAgent":"kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/$Format/replicaset-controller","objectRef":{"resource":"replicasets","namespace":"b","name":"r","apiGroup":"apps","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"status":"Failure","reason":"Conflict","code":409},"requestReceivedTimestamp":"2026-01-02T10:00:02.000000Z","stageTimestamp":"2026-01-02T10:00:02.001000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a3","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/b/pods","verb":"list","userAgent":"kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/$Format/shared-informers","objectRef":{"resource":"pods","namespace":"b","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-01-02T10:00:02.000000Z","stageTimestamp":"2026-01-02T10:00:02.001000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a4","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/b/replicasets","verb":"create","userAgent":"kcmbench","objectRef":{"resource":"replicasets","namespace":"b","apiGroup":"apps","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-01-02T10:00:02.000000Z","stageTimestamp":"2026-01-02T10:00:02.001000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a5","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/b/pods","verb":"create","userAgent":"capstan-controller-manager","objectRef":{"resource":"pods","namespace":"b","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-01-02T10:00:03.000000Z","stageTimestamp":"2026-01-02T10:00:03.001000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a6","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/b/pods/p","verb":"delete","userAgent":"capstan-controller-manager","objectRef":{"resource":"pods","namespace":"b","name":"p","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-01-02T10:00:03.100000Z","stageTimestamp":"2026-01-02T10:00:03.101000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a7","stage":"Panic","requestURI":"/api/v1/namespaces/b/events","verb":"create","userAgent":"kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/$Format/replicaset-controller","objectRef":{"resource":"events","namespace":"b","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":500},"requestReceivedTimestamp":"2026-01-02T10:00:04.000000Z","stageTimestamp":"2026-01-02T10:00:04.001000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a8","stage":"ResponseComplete","verb":"create","userAgent":"kube-controller-manager/v1.37.2`

func TestCountWrites(t *testing.T) {
	since := time.Date(2026, 1, 2, 10, 0, 1, 0, time.UTC)
	tests := []struct {
		name   string
		prefix string
		since  time.Time
		want   writeCounts
	}{
		{
			name:   "kcm in the window",
			prefix: agentKCM,
			since:  since,
			want: writeCounts{
				{"create", "pods", 201}:               1,
				{"update", "replicasets/status", 409}: 1,
				{"create", "events", 500}:             1,
			},
		},
		{
			name:   "kcm from the start",
			prefix: agentKCM,
			want: writeCounts{
				{"create", "pods", 201}:               2,
				{"update", "replicasets/status", 409}: 1,
				{"create", "events", 500}:             1,
			},
		},
		{
			name:   "capstan",
			prefix: agentCapstan,
			since:  since,
			want: writeCounts{
				{"create", "pods", 201}: 1,
				{"delete", "pods", 200}: 1,
			},
		},
		{
			name:   "nobody after the end",
			prefix: agentCapstan,
			since:  since.Add(time.Hour),
			want:   writeCounts{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := writeCounts{}
			n, err := countWrites(strings.NewReader(sampleAuditLog), writeFilter{tt.prefix, tt.since}, got)
			if err != nil {
				t.Fatalf("countWrites: %v", err)
			}
			if want := int64(strings.LastIndexByte(sampleAuditLog, '\n') + 1); n != want {
				t.Errorf("read %d bytes, want %d (all but the partial last line)", n, want)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCountWritesBadLine(t *testing.T) {
	_, err := countWrites(strings.NewReader("{\"stage\":\"ResponseComplete\"}\nnot json\n"), writeFilter{agentPrefix: agentKCM}, writeCounts{})
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("got error %v, want one naming line 2", err)
	}
}

// TestAuditTail appends the sample log in pieces cut mid-line, as the API
// server may be caught writing, and polls after each: the counts are those
// of the whole log, each line counted once.
func TestAuditTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	tail := newAuditTail(path, writeFilter{agentPrefix: agentKCM})
	if got, err := tail.poll(); err != nil || len(got) != 0 {
		t.Fatalf("before the log exists: got %v, %v; want no writes, no error", got, err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prev := 0
	for _, cut := range []int{10, 700, 2000, 2001, 4000, len(sampleAuditLog)} {
		if _, err := f.WriteString(sampleAuditLog[prev:cut]); err != nil {
			t.Fatal(err)
		}
		prev = cut
		if _, err := tail.poll(); err != nil {
			t.Fatalf("poll after %d bytes: %v", cut, err)
		}
	}
	want := writeCounts{}
	if _, err := countWrites(strings.NewReader(sampleAuditLog), writeFilter{agentPrefix: agentKCM}, want); err != nil {
		t.Fatal(err)
	}
	got, err := tail.poll()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestWriteCountsString(t *testing.T) {
	w := writeCounts{
		{"update", "replicasets/status", 200}: 5,
		{"update", "replicasets/status", 409}: 2,
		{"create", "pods", 201}:               500,
	}
	if got, want := w.String(), "create pods 500, update replicasets/status 7 (409: 2)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := w.total(), 507; got != want {
		t.Errorf("total: got %d, want %d", got, want)
	}
	if got, want := (writeCounts{}).String(), "none"; got != want {
		t.Errorf("empty: got %q, want %q", got, want)
	}
}
