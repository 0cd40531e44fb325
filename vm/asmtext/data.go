package asmtext

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/source"
)

// Data is a conformance test file (.data): sections introduced by lines
// "-- asm", "-- raw", "-- mem", "-- result", "-- error", plus "-- c" and
// "-- no register offset", which carry nothing to run. Lines starting with
// # outside the assembly are comments.
type Data struct {
	File string
	// Asm is the assembly text and AsmLine the file line it starts on.
	Asm     string
	AsmLine int
	HasAsm  bool
	// Raw is the expected encoding: either 0x-prefixed 64-bit words (one
	// instruction each, as little-endian numbers) or bytes in hex pairs.
	Raw     []byte
	HasRaw  bool
	RawLine int
	// Mem is the memory the program gets in r1 (length in r2).
	Mem []byte
	// Result is the expected r0; Error the expected error text.
	Result    uint64
	HasResult bool
	Error     string
	HasError  bool
}

// ParseData reads a conformance test file. Unknown sections and malformed
// numbers are errors at their line.
func ParseData(file string, src []byte) (*Data, error) {
	d := &Data{File: file}
	var errs source.Errors
	section := ""
	var asmText, raw, mem, result, errText []string
	rawStart := 0
	for i, ln := range strings.Split(string(src), "\n") {
		n := i + 1
		ln = strings.TrimRight(ln, "\r")
		if rest, ok := strings.CutPrefix(ln, "--"); ok {
			section = strings.TrimSpace(rest)
			switch section {
			case "asm":
				d.HasAsm, d.AsmLine = true, n+1
			case "raw":
				d.HasRaw, rawStart = true, n+1
			case "result":
				d.HasResult = true
			case "error":
				d.HasError = true
			case "mem", "c", "no register offset":
			default:
				errs.Add(source.Pos{File: file, Line: n, Col: 1}, "unknown section %q (asm, raw, mem, result, error, c, no register offset)", section)
			}
			continue
		}
		switch section {
		case "asm":
			asmText = append(asmText, ln)
		case "raw":
			raw = append(raw, stripComment(ln))
		case "mem":
			mem = append(mem, stripComment(ln))
		case "result":
			result = append(result, stripComment(ln))
		case "error":
			if t := strings.TrimSpace(ln); t != "" {
				errText = append(errText, t)
			}
		}
	}
	d.Asm = strings.Join(asmText, "\n")
	d.RawLine = rawStart
	if d.HasRaw {
		b, err := parseRaw(strings.Fields(strings.Join(raw, " ")))
		if err != nil {
			errs.Add(source.Pos{File: file, Line: rawStart}, "raw: %v", err)
		}
		d.Raw = b
	}
	for _, f := range strings.Fields(strings.Join(mem, " ")) {
		b, err := strconv.ParseUint(f, 16, 8)
		if err != nil {
			errs.Add(source.Pos{File: file}, "mem: %q is not a hex byte", f)
			continue
		}
		d.Mem = append(d.Mem, byte(b))
	}
	if d.HasResult {
		f := strings.Fields(strings.Join(result, " "))
		if len(f) != 1 {
			errs.Add(source.Pos{File: file}, "result: want one number, got %d", len(f))
		} else {
			_, v, _, err := parseInt(f[0])
			if err != nil {
				errs.Add(source.Pos{File: file}, "result: %q is not a number", f[0])
			}
			d.Result = v
		}
	}
	d.Error = strings.Join(errText, "\n")
	errs.Sort()
	return d, errs.Err()
}

func stripComment(s string) string {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		return s[:i]
	}
	return s
}

func parseRaw(fields []string) ([]byte, error) {
	var out []byte
	for _, f := range fields {
		if strings.HasPrefix(f, "0x") {
			v, err := strconv.ParseUint(f[2:], 16, 64)
			if err != nil {
				return nil, err
			}
			out = binary.LittleEndian.AppendUint64(out, v)
			continue
		}
		b, err := hex.DecodeString(f)
		if err != nil || len(b) != 1 {
			return nil, &strconv.NumError{Func: "raw", Num: f, Err: strconv.ErrSyntax}
		}
		out = append(out, b...)
	}
	return out, nil
}

// Program returns the file's instructions: the assembly if there is one,
// otherwise the raw encoding decoded.
func (d *Data) Program() (asm.Instructions, error) {
	if d.HasAsm {
		return Assemble(d.File, d.AsmLine, d.Asm)
	}
	if d.HasRaw {
		return Decode(d.Raw)
	}
	return nil, source.Errors{source.Errorf(source.Pos{File: d.File, Line: 1}, "no -- asm or -- raw section: nothing to run")}
}

// Encode returns the little-endian encoding of insns.
func Encode(insns asm.Instructions) ([]byte, error) {
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode reads little-endian instructions.
func Decode(b []byte) (asm.Instructions, error) {
	if len(b)%asm.InstructionSize != 0 {
		return nil, &strconv.NumError{Func: "decode", Num: strconv.Itoa(len(b)), Err: errShortInsn}
	}
	return asm.AppendInstructions(nil, bytes.NewReader(b), binary.LittleEndian, "linux")
}

type errString string

func (e errString) Error() string { return string(e) }

const errShortInsn = errString("length is not a multiple of 8 bytes")
