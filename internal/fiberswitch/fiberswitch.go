// Package fiberswitch holds the context switch of Loom's host emulations
// of GPU kernels (the CUDA kernels' in cuda/testdata/emulate and the MSL
// kernels' in metal/mslcheck), which run a block's threads as fibers of one
// host thread.
package fiberswitch

// Source is C++ that declares and defines
//
//	void loom_emu_switch(void** from, void* to);
//
// It saves the callee-saved registers (System V x86-64: rbx, rbp, r12–r15)
// on the running fiber's stack, stores its stack pointer in *from and
// resumes the fiber whose stack pointer is to. A new fiber's stack holds six
// zeroed registers under the address of its entry function and a null
// return address, so that the first switch to it enters the function with
// the stack aligned as after a call. A barrier then costs a few switches of
// nanoseconds: one std::thread a GPU thread (a futex wake-up of the block at
// every barrier) or swapcontext (a signal-mask system call every switch)
// made the emulations take minutes. x86-64 only.
const Source = `
#if !defined(__x86_64__)
#error "the host emulation switches fibers with x86-64 code"
#endif
extern "C" __attribute__((visibility("hidden"))) void loom_emu_switch(void** from, void* to);
asm(R"(
.text
.globl loom_emu_switch
.hidden loom_emu_switch
.type loom_emu_switch, @function
loom_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size loom_emu_switch, .-loom_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");
`
