// Package gobuild builds Go programs from the Go module proxy into a cache,
// once per machine: it is how envtest gets kube-apiserver, etcd and
// kube-controller-manager without downloading any prebuilt binary.
//
// Guarantees:
//   - A binary at the destination path is complete: it is built under a
//     temporary name and renamed into place, so a killed build leaves nothing
//     half-written behind.
//   - Concurrent callers (goroutines or processes) building the same
//     destination build it once: a file lock next to the destination
//     serialises them and the losers find the binary already there.
//   - The temporary module is removed after the build, whatever its outcome.
package gobuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoToolchain is returned when the go command cannot be found.
var ErrNoToolchain = errors.New("gobuild: the go command is not on PATH")

// Spec describes one program to build from a temporary module.
type Spec struct {
	// Name is a human name for progress lines, e.g. "kube-apiserver v1.37.2".
	Name string
	// Estimate is shown in the progress line, e.g. "~4 min".
	Estimate string
	// GoMod returns the content of the temporary module's go.mod. It is
	// called only when a build is needed.
	GoMod func(ctx context.Context) (string, error)
	// Files are extra files (name → content) written into the module, such as
	// main.go or a tools.go that pins the package to build.
	Files map[string]string
	// Package is the package to build: an import path, or "." for the
	// temporary module's own main package.
	Package string
	// LDFlags are passed as -ldflags.
	LDFlags string
}

// Ensure makes sure an executable built from spec exists at dst. It returns
// at once when dst already exists. Progress lines are written to progress
// (which may be nil).
func Ensure(ctx context.Context, dst string, spec Spec, progress io.Writer) error {
	if isExecutable(dst) {
		return nil
	}
	if progress == nil {
		progress = io.Discard
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building %s: %w", spec.Name, ErrNoToolchain)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("building %s: %w", spec.Name, err)
	}
	unlock, err := lockFile(ctx, dst+".lock", func() {
		fmt.Fprintf(progress, "capstan: waiting for another process building %s\n", spec.Name)
	})
	if err != nil {
		return fmt.Errorf("building %s: %w", spec.Name, err)
	}
	defer unlock()
	if isExecutable(dst) { // built by whoever held the lock before us
		return nil
	}

	work, err := os.MkdirTemp(filepath.Dir(dst), ".build-")
	if err != nil {
		return fmt.Errorf("building %s: %w", spec.Name, err)
	}
	defer os.RemoveAll(work)
	gomod, err := spec.GoMod(ctx)
	if err != nil {
		return fmt.Errorf("building %s: %w", spec.Name, err)
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(gomod), 0o644); err != nil {
		return fmt.Errorf("building %s: %w", spec.Name, err)
	}
	for name, content := range spec.Files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("building %s: %w", spec.Name, err)
		}
	}

	start := time.Now()
	fmt.Fprintf(progress, "capstan: building %s from the Go module proxy, first time only, %s\n", spec.Name, spec.Estimate)
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".partial")
	args := []string{"build", "-mod=mod", "-trimpath", "-o", tmp}
	if spec.LDFlags != "" {
		args = append(args, "-ldflags", spec.LDFlags)
	}
	args = append(args, spec.Package)
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = work
	cmd.Env = buildEnv(os.Environ())
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp)
		if ctx.Err() != nil {
			return fmt.Errorf("building %s: %w", spec.Name, ctx.Err())
		}
		return fmt.Errorf("building %s with %s %s: %w\n%s", spec.Name, goBin, strings.Join(args, " "), err, tail(out.Bytes(), 40))
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("building %s: %w", spec.Name, err)
	}
	fmt.Fprintf(progress, "capstan: built %s in %s\n", spec.Name, time.Since(start).Round(time.Second))
	return nil
}

// buildEnv is the environment of the go command: the caller's, with the
// settings that would make a standalone module build fail or differ removed.
func buildEnv(env []string) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOFLAGS", "GOWORK", "CGO_ENABLED", "GOOS", "GOARCH":
			continue
		}
		out = append(out, kv)
	}
	// A static binary; the control plane needs no cgo.
	return append(out, "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=mod -buildvcs=false")
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
