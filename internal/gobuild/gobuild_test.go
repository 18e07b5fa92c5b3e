package gobuild

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func helloSpec(main string) Spec {
	return Spec{
		Name:     "hello",
		Estimate: "a moment",
		GoMod:    func(context.Context) (string, error) { return "module example.test/hello\n\ngo 1.26\n", nil },
		Files:    map[string]string{"main.go": main},
		Package:  ".",
		LDFlags:  "-s -w",
	}
}

const helloMain = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Print(\"hello from the cache\") }\n"

// TestEnsureBuildsOnceUnderConcurrency: several concurrent callers get one
// build and a working binary; a later call does not build again.
func TestEnsureBuildsOnceUnderConcurrency(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dst := filepath.Join(t.TempDir(), "bin", "hello")
	var mu sync.Mutex
	var progress bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return progress.Write(p) })

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = Ensure(ctx, dst, helloSpec(helloMain), w) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Ensure #%d: %v", i, err)
		}
	}
	if n := strings.Count(progress.String(), "capstan: building hello"); n != 1 {
		t.Errorf("builds started: got %d, want 1\n%s", n, progress.String())
	}
	out, err := exec.Command(dst).Output()
	if err != nil || string(out) != "hello from the cache" {
		t.Fatalf("running the built binary: got %q, %v", out, err)
	}
	progress.Reset()
	if err := Ensure(ctx, dst, helloSpec("this would not compile"), w); err != nil {
		t.Fatalf("Ensure with the binary present: %v", err)
	}
	if progress.Len() != 0 {
		t.Errorf("Ensure rebuilt a present binary: %q", progress.String())
	}
	assertOnly(t, filepath.Dir(dst), "hello", "hello.lock")
}

// TestEnsureFailedBuildLeavesNothing: a build error names the spec and
// carries the compiler's words, and leaves no binary or temp module.
func TestEnsureFailedBuildLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dst := filepath.Join(t.TempDir(), "broken")
	err := Ensure(ctx, dst, helloSpec("package main\n\nfunc main() { undefinedThing() }\n"), nil)
	if err == nil {
		t.Fatal("Ensure of a broken program: got no error")
	}
	if !strings.Contains(err.Error(), "building hello") || !strings.Contains(err.Error(), "undefinedThing") {
		t.Errorf("error lacks the spec name or the compiler output: %v", err)
	}
	assertOnly(t, filepath.Dir(dst), "broken.lock")
}

func TestEnsureWithoutToolchain(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := Ensure(context.Background(), filepath.Join(t.TempDir(), "x"), helloSpec(helloMain), nil)
	if err == nil || !strings.Contains(err.Error(), ErrNoToolchain.Error()) {
		t.Errorf("got %v, want ErrNoToolchain", err)
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("files in %s: got %v, want %v", dir, got, names)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
