// Fiber contexts for emu_fibers.h: start a function on a stack of its own, switch between
// stacks. On x86-64 a switch saves the callee-saved registers and swaps stack pointers
// (tens of nanoseconds); elsewhere, or with -DEMU_UCONTEXT, it is ucontext's
// makecontext/swapcontext, which also saves the signal mask with a system call each
// time (a reduction kernel switches a dozen times per thread: ten times slower).
#pragma once

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && !defined(EMU_UCONTEXT)

extern "C" void emu_switch(void** save_sp, void* next_sp);
asm(R"(
    .text
    .p2align 4
    .hidden emu_switch
    .type emu_switch, @function
emu_switch:
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
    .size emu_switch, .-emu_switch
)");

namespace emu {
struct Context { void* sp = nullptr; };

inline bool context_support() { return true; }

// ``c`` will run entry() (which must never return) on [stack, stack + size) when switched to.
inline void context_start(Context& c, char* stack, size_t size, void (*entry)())
{
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;                         // entry's return address: it never returns
    *--sp = reinterpret_cast<void*>(entry);  // emu_switch's ret lands here (rsp = 8 mod 16)
    for (int r = 0; r < 6; ++r) *--sp = nullptr;   // rbp rbx r12-r15, popped first
    c.sp = sp;
}

inline void context_switch(Context& from, Context& to) { emu_switch(&from.sp, to.sp); }
}  // namespace emu

#else

#include <ucontext.h>

namespace emu {
struct Context { ucontext_t uc; };

inline ucontext_t& blank_context()
{
    static ucontext_t blank;
    return blank;
}

inline bool context_support() { return getcontext(&blank_context()) == 0; }

inline void context_start(Context& c, char* stack, size_t size, void (*entry)())
{
    c.uc = blank_context();
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}

inline void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
}  // namespace emu

#endif
