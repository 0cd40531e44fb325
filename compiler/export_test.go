package compiler

import (
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
)

// ShapeCounts is what compiling one node's programs by shape did.
type ShapeCounts struct {
	Programs, Shapes, Stamped, Alone, Covered int
	NoTemplate                                []string
}

// CountShapes lowers node n of cfg and compiles its programs by shape,
// reporting what the templates did.
func CountShapes(cfg *model.Config, n *model.Node) (ShapeCounts, error) {
	res, err := lower.Node(cfg, n)
	if err != nil {
		return ShapeCounts{}, err
	}
	_, _, st, err := compileShapes(res.Module, Options{CheckEveryPass: true})
	if err != nil {
		return ShapeCounts{}, err
	}
	c := ShapeCounts{Programs: len(res.Module.Programs), Shapes: st.shapes, Stamped: st.stamped, Alone: st.alone, NoTemplate: st.noTemplate}
	for _, ok := range st.covered {
		if ok {
			c.Covered++
		}
	}
	return c, nil
}

// Internal helpers of the shape templates, for template_test.go.
var (
	VerifiedBySite    = verifiedBySite
	TailChainsBounded = tailChainsBounded
)
