// Package asmtext assembles and disassembles eBPF in the text syntax of the
// bpf_conformance suite (the ubpf syntax):
//
//	mov %r0, 0
//	ldxh %r2, [%r1+12]
//	jne %r2, 0x8, drop
//	lock fetch add [%r10-8], %r1
//	call local func1
//	drop:
//	exit
//
// Registers are %r0-%r10; immediates are decimal or 0x hex; memory operands
// are [%rN], [%rN+OFF] or [%rN-OFF]; jump targets are labels (the first
// exit is also the label "exit") or relative offsets written +N / -N.
// Beyond the suite, lddw takes a map by name (lddw %r1, name) or a map
// value with an offset (lddw %r1, name+8), as cilium/ebpf references maps.
//
// The grammar is written with participle; Assemble turns it into
// asm.Instructions and Disassemble prints asm.Instructions back.
package asmtext

import (
	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

var asmLexer = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "Comment", Pattern: `#[^\n]*`},
	{Name: "EOL", Pattern: `\n`},
	{Name: "Whitespace", Pattern: `[ \t\r]+`},
	{Name: "Reg", Pattern: `%[A-Za-z0-9_]+`},
	{Name: "Int", Pattern: `[-+]?(0[xX][0-9a-fA-F]+|[0-9]+)`},
	{Name: "Ident", Pattern: `[A-Za-z_.][A-Za-z0-9_.]*`},
	{Name: "Punct", Pattern: `[\[\],:]`},
})

// program is a whole program: one statement per line.
type program struct {
	Lines []*line `parser:"@@*"`
}

type line struct {
	Pos   lexer.Position
	Label *string    `parser:"( @Ident \":\" )?"`
	Stmt  *statement `parser:"@@?"`
	End   string     `parser:"@EOL"`
}

// statement is a mnemonic, the words that qualify it (lock fetch add,
// call local, a jump's label) and its comma-separated operands.
type statement struct {
	Pos      lexer.Position
	Mnemonic string     `parser:"@Ident"`
	Words    []*word    `parser:"@@*"`
	Operands []*operand `parser:"( @@ ( \",\" @@ )* )?"`
}

type word struct {
	Pos  lexer.Position
	Text string `parser:"@Ident"`
}

type operand struct {
	Pos   lexer.Position
	Reg   *string  `parser:"  @Reg"`
	Mem   *memOp   `parser:"| \"[\" @@ \"]\""`
	Int   *string  `parser:"| @Int"`
	Ident *identOp `parser:"| @@"`
}

type memOp struct {
	Pos  lexer.Position
	Base string  `parser:"@Reg"`
	Off  *string `parser:"@Int?"`
}

type identOp struct {
	Pos  lexer.Position
	Name string  `parser:"@Ident"`
	Off  *string `parser:"@Int?"`
}

var parser = participle.MustBuild[program](
	participle.Lexer(asmLexer),
	participle.Elide("Whitespace", "Comment"),
	participle.UseLookahead(2),
)
