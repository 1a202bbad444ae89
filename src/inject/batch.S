# Runs a batch of syscall records, then stops itself with SIGSTOP. See src/inject/batch.ts.
# In: rbx = first record, r12 = record count. Record (72 bytes): nr, six arguments, expected
# result, result (written here). A record whose nr is negative (LOAD) makes no call: its result
# is the 8 bytes at its first argument, so what an earlier call wrote (pipe2's fds) is checked
# here, without a round trip. Stops at the first result that is neither the expected one nor,
# when the expected one is INT64_MIN ("any success"), a non-error. Out: rbx = the record it
# stopped at (one past the last when all matched).
	.text
	.globl batch
batch:
.Lnext:
	test %r12, %r12
	jz .Lstop
	mov (%rbx), %rax
	mov 8(%rbx), %rdi
	mov 16(%rbx), %rsi
	mov 24(%rbx), %rdx
	mov 32(%rbx), %r10
	mov 40(%rbx), %r8
	mov 48(%rbx), %r9
	test %rax, %rax
	js .Lload
	syscall
	jmp .Lresult
.Lload:
	mov (%rdi), %rax
.Lresult:
	mov %rax, 64(%rbx)
	mov 56(%rbx), %rcx
	cmp %rcx, %rax
	je .Lmatched
	movabs $0x8000000000000000, %r11
	cmp %r11, %rcx
	jne .Lstop
	cmp $-4095, %rax
	jae .Lstop
.Lmatched:
	add $72, %rbx
	dec %r12
	jmp .Lnext
.Lstop:
	mov $39, %eax
	syscall
	mov %eax, %r13d
	mov $186, %eax
	syscall
	mov %eax, %esi
	mov %r13d, %edi
	mov $19, %edx
	mov $234, %eax
	syscall
	jmp .Lstop
