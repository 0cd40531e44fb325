package lint

import (
	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/verifier"
)

// StaticEstimate returns an Estimator that asks ebpfc's static verifier
// (package verifier) for its estimate of the kernel's processed
// instructions: instructions visited over every explored path. It verifies
// each object once and answers for all its programs; a program the static
// verifier does not know (it never should) falls back to InstructionCount.
func StaticEstimate() Estimator {
	reports := make(map[*backend.Object]map[string]int)
	return func(obj *backend.Object, p *backend.Program) (int, bool) {
		processed, ok := reports[obj]
		if !ok {
			processed = make(map[string]int)
			for _, r := range verifier.Verify(compiler.VerifierCollection(obj)).Programs {
				processed[r.Name] = r.Processed
			}
			reports[obj] = processed
		}
		if n, ok := processed[p.Name]; ok {
			return n, false
		}
		return InstructionCount(obj, p)
	}
}
