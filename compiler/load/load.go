// Package load is ebpfc's front end: it reads a directory of CUE files, JSON
// endpoint inventories and Kubernetes objects (YAML or JSON), checks them
// against the schema in package schemas (and the Kubernetes API's rules) and
// against the rules the schema cannot state, and decodes them into a
// model.Config.
//
// Checking runs in stages, and each stage reports every problem it finds:
//
//  1. syntax: every CUE, JSON and YAML file is parsed;
//  2. shape: the CUE files are unified with the schema, the JSON
//     inventories are checked field by field against the same rules, and
//     Kubernetes objects are checked as the API server checks them and
//     translated (k8s.go);
//  3. meaning: names, references, duplicates, prefixes and ranges across the
//     whole configuration.
//
// A stage runs only when the ones before it found nothing, because its
// findings would mostly be echoes of earlier ones. Problems are returned as
// source.Errors, sorted, each at the file:line:col a person wrote.
package load

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// Load reads the *.cue, *.json, *.yaml and *.yml files of dir (not its subdirectories) in
// sorted order and returns the configuration they describe. Positions in the
// result and in errors name files as dir joined with the file name.
func Load(dir string) (*model.Config, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && isInput(e.Name()) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no .cue, .json or .yaml files", dir)
	}
	return load(os.DirFS(dir), names, func(name string) string { return filepath.Join(dir, name) })
}

// LoadFS is Load over the named files of fsys; positions name files as they
// are named in names. The result does not depend on the order of names.
func LoadFS(fsys fs.FS, names []string) (*model.Config, error) {
	return load(fsys, names, func(name string) string { return name })
}

func isInput(name string) bool {
	switch path.Ext(name) {
	case ".cue", ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// inputFile is one file as read, with the name positions use.
type inputFile struct {
	display string
	data    []byte
}

func load(fsys fs.FS, names []string, display func(string) string) (*model.Config, error) {
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	var cueFiles, jsonFiles, yamlFiles []inputFile
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		f := inputFile{display: display(name), data: data}
		switch path.Ext(name) {
		case ".cue":
			cueFiles = append(cueFiles, f)
		case ".json":
			jsonFiles = append(jsonFiles, f)
		case ".yaml", ".yml":
			yamlFiles = append(yamlFiles, f)
		default:
			return nil, fmt.Errorf("%s: not a .cue, .json, .yaml or .yml file", f.display)
		}
	}

	var errs source.Errors

	// Stage 1: syntax.
	parsedCUE, cueErrs := parseCUE(cueFiles)
	errs = append(errs, cueErrs...)
	var inventories, kubeDocs []*jsonValue
	for _, f := range jsonFiles {
		v, err := parseJSON(f.display, f.data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if isKubernetesObject(v) {
			kubeDocs = append(kubeDocs, v)
		} else {
			inventories = append(inventories, v)
		}
	}
	for _, f := range yamlFiles {
		docs, yamlErrs := parseYAML(f.display, f.data)
		kubeDocs = append(kubeDocs, docs...)
		errs = append(errs, yamlErrs...)
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}

	// Stage 2: shape.
	cfg, cueErrs, err := evalCUE(parsedCUE)
	if err != nil {
		return nil, err
	}
	errs = append(errs, cueErrs...)
	var jsonEndpoints []*model.Endpoint
	for _, inv := range inventories {
		eps, invErrs := decodeInventory(inv)
		jsonEndpoints = append(jsonEndpoints, eps...)
		errs = append(errs, invErrs...)
	}
	kube, kubeErrs := decodeKubernetes(kubeDocs)
	errs = append(errs, kubeErrs...)
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}

	// Stage 3: meaning.
	cfg.Endpoints = append(cfg.Endpoints, jsonEndpoints...)
	errs = mergeKubernetes(cfg, kube)
	errs = append(errs, validate(cfg)...)
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	return cfg, nil
}
