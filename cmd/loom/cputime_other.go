//go:build !unix

package main

import "time"

// processCPU is the CPU time the process has used; this system does not
// tell it.
func processCPU() (time.Duration, bool) { return 0, false }
