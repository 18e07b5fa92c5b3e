package envtest

import "syscall"

// sysProcAttr puts each component in its own process group, so that stopping
// it reaches everything it forked, and asks the kernel to kill it if the test
// process dies without calling Stop (a panic or a test timeout): no etcd or
// kube-apiserver outlives the process that started it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
