package runtime

import (
	"github.com/loomrt/loom/primitives"
)

// Recorded commands. The encoder records every command buffer as a
// CommandList and submits it; every backend executes the same list and the
// checking device reads it. A cached plan keeps its lists and submits them
// again on every replay, so a device must treat a submitted list as
// read-only: a replay may submit a list (or one sharing its passes'
// commands) again before the earlier submission has completed.

// CommandKind says what a Command does.
type CommandKind uint8

const (
	// CmdDispatch launches Kernel over Grid with Args, Params and Shared
	// bytes of threadgroup memory.
	CmdDispatch CommandKind = iota
	// CmdBarrier orders every dispatch and upload of its pass before it
	// before every one after it.
	CmdBarrier
	// CmdWaitFence makes the commands after it in its pass wait until the
	// most recent CmdUpdateFence of Fence submitted before it has been
	// reached.
	CmdWaitFence
	// CmdUpdateFence marks Fence once every command before it in its pass
	// has completed. A pass must not wait on a fence it updates.
	CmdUpdateFence
	// CmdUpload writes Data into the byte range of Args[0] (one Write
	// argument, Size == len(Data)) in device order: it is ordered exactly
	// like a dispatch that writes that range, so it never races with work
	// in flight. The device copies Data no later than when the upload runs;
	// the runtime does not change Data after submitting it.
	CmdUpload
)

// Command is one recorded command of a pass. Which fields are set depends
// on Kind.
type Command struct {
	Kind   CommandKind
	Kernel Kernel
	Grid   primitives.Dim3 // threadgroups
	Group  primitives.Dim3 // threads per threadgroup
	Args   []BufferArg
	Params any // nil, or a pointer to the kernel's params struct
	Shared int // threadgroup memory bytes
	Fence  Fence
	Data   []byte // CmdUpload
}

// Pass is a concurrent compute pass: its dispatches may run concurrently
// unless a barrier separates them. Passes of a list, and lists, are ordered
// only by fences.
type Pass struct {
	Commands []Command
}

// Signal sets Event to Value once all the list's work has completed and
// Event has reached Value-1, so the event's value is a completion frontier.
type Signal struct {
	Event Event
	Value uint64
}

// CommandList is one command buffer: passes, then signals.
type CommandList struct {
	Passes  []Pass
	Signals []Signal

	// Replay, when not zero, identifies a list that replays of a recorded
	// plan submit again and again (runtime/replay.go, listSet), so that a
	// device may keep what it derived from the list (a CUDA graph exec)
	// and only refresh what a replay changes. Every submission of a list
	// with this Replay has the same commands except for the signals'
	// values, the fence waits and updates, the uploads' Data (of the same
	// lengths) and the Buffer of the arguments named in Rebound. A list
	// with this Replay is submitted again only after the host has seen
	// its previous submission complete. No other list ever has the same
	// Replay: a plan recorded again submits lists with new ones.
	Replay uint64
	// Rebound names the arguments a replay may bind to another buffer, in
	// dispatch order (dispatches counted as in DispatchError).
	Rebound []ReboundArg
}

// ReboundArg is argument Arg of the list's dispatch number Dispatch.
type ReboundArg struct{ Dispatch, Arg int }

// NewPass starts a pass; the commands added next go into it.
func (l *CommandList) NewPass() { l.Passes = append(l.Passes, Pass{}) }

func (l *CommandList) add(c Command) {
	p := &l.Passes[len(l.Passes)-1]
	p.Commands = append(p.Commands, c)
}

// Dispatch adds a kernel launch to the open pass. params may be nil.
func (l *CommandList) Dispatch(k Kernel, grid, group primitives.Dim3, args []BufferArg, params any, shared int) {
	l.add(Command{Kind: CmdDispatch, Kernel: k, Grid: grid, Group: group, Args: args, Params: params, Shared: shared})
}

// Barrier adds a barrier to the open pass.
func (l *CommandList) Barrier() { l.add(Command{Kind: CmdBarrier}) }

// WaitFence adds a fence wait to the open pass.
func (l *CommandList) WaitFence(f Fence) { l.add(Command{Kind: CmdWaitFence, Fence: f}) }

// UpdateFence adds a fence update to the open pass.
func (l *CommandList) UpdateFence(f Fence) { l.add(Command{Kind: CmdUpdateFence, Fence: f}) }

// Upload adds an upload of data into dst at offset to the open pass.
func (l *CommandList) Upload(dst Buffer, offset int64, data []byte) {
	l.add(Command{Kind: CmdUpload, Data: data,
		Args: []BufferArg{{Buffer: dst, Offset: offset, Size: int64(len(data)), Access: primitives.Write, Name: "upload"}}})
}

// Signal adds a signal of ev to value.
func (l *CommandList) Signal(ev Event, value uint64) {
	l.Signals = append(l.Signals, Signal{ev, value})
}
