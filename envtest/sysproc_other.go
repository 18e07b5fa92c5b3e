//go:build unix && !linux

package envtest

import "syscall"

// sysProcAttr puts each component in its own process group, so that stopping
// it reaches everything it forked.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
