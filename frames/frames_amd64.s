#include "textflag.h"

// Must match FrameBytes in frames.go.
#define FRAME 256

// func touchFrames(top uintptr, n int) (used uintptr)
//
// Register use while SP is on the reserved stack:
//   R12 goroutine SP to restore
//   R13 address of frame<> (called indirectly)
//   CX  frames still to enter
//   DX  SP of the deepest frame
// Nothing else is touched; BP is preserved. No Go code runs until SP has been
// switched back, so the goroutine stack bounds are never consulted.
TEXT ·touchFrames(SB), NOSPLIT|NOFRAME, $0-24
	MOVQ	top+0(FP), AX
	MOVQ	n+8(FP), CX
	MOVQ	AX, DX
	TESTQ	CX, CX
	JLE	done
	MOVQ	SP, R12
	LEAQ	frame<>(SB), R13
	MOVQ	AX, SP
	CALL	R13
	MOVQ	R12, SP
done:
	SUBQ	DX, AX
	MOVQ	AX, used+16(FP)
	RET

// One recursion level: FRAME bytes including the return address pushed by
// the caller's CALL. The call is indirect so the linker's nosplit stack check
// does not follow (and reject) the recursion.
TEXT frame<>(SB), NOSPLIT|NOFRAME, $0-0
	SUBQ	$(FRAME-8), SP
	MOVQ	CX, 0(SP)	// store at the lowest address of the frame
	DECQ	CX
	JZ	deepest
	CALL	R13
	ADDQ	$(FRAME-8), SP
	RET
deepest:
	MOVQ	SP, DX
	ADDQ	$(FRAME-8), SP
	RET
