/* Entry from a hooked system-call handler's patched __fentry__ site (`call palisade_trampoline`
 * in place of the 5-byte NOP), ftrace style. On entry: [rsp] = site + 5 (the handler's body),
 * [rsp + 8] = the handler's caller; rdi = the `struct pt_regs *` the handler received.
 *
 * palisade_handle(regs, site + 5) returns 0 to let the handler run, or the value the system call
 * must return without running (-EPERM): then the handler's frame is skipped and we return
 * straight to its caller. Every register the handler may read is preserved; the stack is aligned
 * to 16 for the C call whatever the kernel's alignment (it builds with an 8-byte boundary).
 */
	.text
	.globl palisade_trampoline
	.type palisade_trampoline, @function
palisade_trampoline:
	pushq %rbp
	movq %rsp, %rbp
	pushq %rdi
	pushq %rsi
	pushq %rdx
	pushq %rcx
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %rax
	movq 8(%rbp), %rsi
	andq $-16, %rsp
	call palisade_handle
	leaq -72(%rbp), %rsp
	testq %rax, %rax
	jnz 1f
	popq %rax
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rcx
	popq %rdx
	popq %rsi
	popq %rdi
	popq %rbp
	ret
1:
	addq $8, %rsp
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rcx
	popq %rdx
	popq %rsi
	popq %rdi
	popq %rbp
	addq $8, %rsp
	ret
	.size palisade_trampoline, . - palisade_trampoline

/* Table-redirect stubs (the paper's method, for kernels that call sys_call_table[nr]): stub i
 * replaces a table entry. It enters the trampoline exactly like a patched fentry site (the hook
 * table's `site` is the stub's address), then tail-jumps to the original handler kept in
 * palisade_table_orig[i]; on block, the trampoline returns straight to the stub's caller.
 * 16 bytes each, MS_MAX_HOOKS of them.
 */
	.globl palisade_table_stubs
	.balign 16
palisade_table_stubs:
	.set stub, 0
	.rept 32
	.balign 16
	call palisade_trampoline
	jmp *palisade_table_orig + 8 * stub(%rip)
	.set stub, stub + 1
	.endr
	.size palisade_table_stubs, . - palisade_table_stubs
	.section .note.GNU-stack, "", @progbits
