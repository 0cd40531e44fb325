package netpolcases

import (
	"fmt"
	"strings"
)

// Matrix is a reachability truth table over the nine pods: Allowed[i][j]
// says whether pod i (the row, "from") may connect to pod j (the column,
// "to").
type Matrix struct {
	Pods    []string
	Allowed [][]bool
}

func newMatrix(pods []Pod) Matrix {
	m := Matrix{Allowed: make([][]bool, len(pods))}
	for i, p := range pods {
		m.Pods = append(m.Pods, p.ID())
		m.Allowed[i] = make([]bool, len(pods))
	}
	return m
}

// ParseMatrix reads a matrix in the form Kubernetes' e2e tests print:
// a header line naming the columns (its first field, the corner, is
// ignored), then one line per row: the row's pod and one cell per column,
// "." for allowed and "X" for blocked. Fields are separated by spaces or
// tabs; blank lines are ignored. The rows and columns must be the nine pods
// in order.
//
//   - x/a	x/b	x/c	y/a	y/b	y/c	z/a	z/b	z/c
//     x/a	X	.	.	.	.	.	.	.	.
func ParseMatrix(text string) (Matrix, error) {
	pods := Pods()
	m := newMatrix(pods)
	var lines [][]string
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines = append(lines, f)
		}
	}
	if len(lines) != len(pods)+1 {
		return m, fmt.Errorf("matrix has %d lines, want a header and %d rows", len(lines), len(pods))
	}
	if got, want := strings.Join(lines[0][1:], " "), strings.Join(m.Pods, " "); got != want {
		return m, fmt.Errorf("matrix header %q, want %q", got, want)
	}
	for i, row := range lines[1:] {
		if row[0] != m.Pods[i] {
			return m, fmt.Errorf("matrix row %d is %q, want %q", i+1, row[0], m.Pods[i])
		}
		if len(row) != len(pods)+1 {
			return m, fmt.Errorf("matrix row %s has %d cells, want %d", row[0], len(row)-1, len(pods))
		}
		for j, c := range row[1:] {
			switch c {
			case ".":
				m.Allowed[i][j] = true
			case "X":
			default:
				return m, fmt.Errorf("matrix row %s, column %s: cell %q, want \".\" or \"X\"", row[0], m.Pods[j], c)
			}
		}
	}
	return m, nil
}

// String prints m in the form ParseMatrix reads.
func (m Matrix) String() string {
	var b strings.Builder
	b.WriteString("-\t" + strings.Join(m.Pods, "\t") + "\n")
	for i, row := range m.Allowed {
		b.WriteString(m.Pods[i])
		for _, ok := range row {
			if ok {
				b.WriteString("\t.")
			} else {
				b.WriteString("\tX")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Compare returns one line per cell where got differs from want, ignoring
// the diagonal: as in Kubernetes' e2e suite (ignoreLoopback), a pod
// reaching itself is left undefined, since CNIs differ on it and the
// datapath never sees such traffic.
func Compare(want, got Matrix) []string {
	var out []string
	for i := range want.Allowed {
		for j := range want.Allowed[i] {
			if i == j || want.Allowed[i][j] == got.Allowed[i][j] {
				continue
			}
			verdict := func(ok bool) string {
				if ok {
					return "allowed"
				}
				return "blocked"
			}
			out = append(out, fmt.Sprintf("%s -> %s: %s, want %s", want.Pods[i], want.Pods[j], verdict(got.Allowed[i][j]), verdict(want.Allowed[i][j])))
		}
	}
	return out
}
