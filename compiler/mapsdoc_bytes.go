package compiler

import (
	"encoding/hex"
	"fmt"
)

// Bytes decodes the entry's exact key and value bytes, as loaders (the
// kernel loader and the interpreter) apply them.
func (e MapsDocEntry) Bytes() (key, value []byte, err error) {
	key, err = hex.DecodeString(e.KeyBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("key: %w", err)
	}
	value, err = hex.DecodeString(e.ValueBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("value: %w", err)
	}
	return key, value, nil
}
