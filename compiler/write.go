package compiler

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// WriteArtifacts writes each node's files into out/NODE/. Every node's
// directory is written beside its final place and renamed into it, so a
// directory is never left half-written; an earlier tree for the same node is
// replaced as a whole.
func WriteArtifacts(out string, arts []*Artifacts) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, a := range arts {
		tmp, err := os.MkdirTemp(out, "."+a.Node+".tmp-")
		if err != nil {
			return err
		}
		var names []string
		for name := range a.Files {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if err := os.WriteFile(filepath.Join(tmp, name), a.Files[name], 0o644); err != nil {
				os.RemoveAll(tmp)
				return err
			}
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			os.RemoveAll(tmp)
			return err
		}
		final := filepath.Join(out, a.Node)
		if err := os.RemoveAll(final); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("replacing %s: %w", final, err)
		}
		if err := os.Rename(tmp, final); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	return nil
}
