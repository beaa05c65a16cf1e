package cuda

import (
	"sync/atomic"
	"time"
)

// HostTimes is the host's wall time in the device's calls since it opened,
// by class, with the number of calls of each: where a step's host time
// goes (loom bench decode's host phases take the difference over each
// step). Submit holds Launch, Update, Stage and Record, and Wait holds
// Sync; the other classes are apart.
type HostTimes struct {
	Submit HostTime // queue.Submit: the lock, the structure or replay lookup, the driver calls below
	Launch HostTime // cuGraphLaunch, or the cuLaunchKernel calls of a list launched launch by launch
	Update HostTime // cuGraphExecKernelNodeSetParams of a replayed list's rebound arguments
	Stage  HostTime // a replayed list's uploads: the copy into its pinned staging, or copies on the stream
	Record HostTime // cuEventRecord of the command buffer's completion event
	Poll   HostTime // Event.Value: cuEventQuery of the command buffers in flight (at a runtime call's start)
	Wait   HostTime // blocking until a command buffer completed, and retiring it
	Sync   HostTime // of Wait, cuEventSynchronize alone: the device's time left plus the wake-up
	Read   HostTime // buffer reads: the copy to the host and its synchronise (a step's token read-back)
	Write  HostTime // buffer writes
}

// HostTime is the wall time and number of calls of one class of
// HostTimes.
type HostTime struct {
	Time  time.Duration
	Calls int64
}

// hostClass indexes Device.hostTimes.
type hostClass int

const (
	hostSubmit hostClass = iota
	hostLaunch
	hostUpdate
	hostStage
	hostRecord
	hostPoll
	hostWait
	hostSync
	hostRead
	hostWrite
	hostClasses
)

// hostClock accumulates one class's time and calls.
type hostClock struct{ ns, calls atomic.Int64 }

// since adds the time since start (a time.Now of the caller's) to class c.
func (d *Device) since(c hostClass, start time.Time) {
	h := &d.hostTimes[c]
	h.ns.Add(int64(time.Since(start)))
	h.calls.Add(1)
}

// HostTimes returns the host's time in the device's calls so far.
func (d *Device) HostTimes() HostTimes {
	get := func(c hostClass) HostTime {
		h := &d.hostTimes[c]
		return HostTime{time.Duration(h.ns.Load()), h.calls.Load()}
	}
	return HostTimes{Submit: get(hostSubmit), Launch: get(hostLaunch), Update: get(hostUpdate), Stage: get(hostStage),
		Record: get(hostRecord), Poll: get(hostPoll), Wait: get(hostWait), Sync: get(hostSync), Read: get(hostRead), Write: get(hostWrite)}
}
