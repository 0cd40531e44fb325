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
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// Load reads the *.cue, *.json, *.yaml and *.yml files of dir (not its subdirectories) in
// sorted order and returns the configuration they describe. Positions in the
// result and in errors name files as dir joined with the file name.
func Load(dir string) (*model.Config, error) {
	return loadDir(dir, nil)
}

func loadDir(dir string, cache *Cache) (*model.Config, error) {
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
	return load(os.DirFS(dir), names, func(name string) string { return filepath.Join(dir, name) }, cache)
}

// Cache keeps the evaluation of the CUE files of the last configuration
// loaded through it. A load whose CUE files are byte-identical to the last
// one's (same names, same bytes: only JSON inventories changed, as when
// endpoints come and go) reuses that evaluation instead of parsing and
// evaluating them again, which is most of the time of a large load; the
// result is the configuration Load gives. Configurations with Kubernetes
// objects are evaluated every time. A Cache is safe for concurrent use.
type Cache struct {
	mu  sync.Mutex
	key [sha256.Size]byte
	// cfg is the CUE files' evaluation, never handed out: each load
	// gets a copy whose slices it may append to and sort.
	cfg *model.Config
}

// Load is Load, through the cache.
func (c *Cache) Load(dir string) (*model.Config, error) {
	return loadDir(dir, c)
}

// cueKey identifies a set of CUE files by their names and contents.
func cueKey(files []inputFile) [sha256.Size]byte {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s%d:", len(f.display), f.display, len(f.data))
		h.Write(f.data)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

func (c *Cache) get(key [sha256.Size]byte) *model.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil || c.key != key {
		return nil
	}
	return copyConfig(c.cfg)
}

func (c *Cache) put(key [sha256.Size]byte, cfg *model.Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.key, c.cfg = key, copyConfig(cfg)
}

// copyConfig copies cfg with every slice the later stages of a load append
// to or sort; the values the slices point to are shared (those stages only
// add the namespace name label to namespaces and sort named ports, which
// the first load has done).
func copyConfig(cfg *model.Config) *model.Config {
	out := *cfg
	out.Nodes = slices.Clone(cfg.Nodes)
	out.Namespaces = slices.Clone(cfg.Namespaces)
	out.Endpoints = slices.Clone(cfg.Endpoints)
	out.Policies = slices.Clone(cfg.Policies)
	out.Services = slices.Clone(cfg.Services)
	out.Tests = slices.Clone(cfg.Tests)
	if cfg.NAT != nil {
		nat := *cfg.NAT
		nat.EgressGateways = slices.Clone(nat.EgressGateways)
		out.NAT = &nat
	}
	return &out
}

// LoadFS is Load over the named files of fsys; positions name files as they
// are named in names. The result does not depend on the order of names.
func LoadFS(fsys fs.FS, names []string) (*model.Config, error) {
	return load(fsys, names, func(name string) string { return name }, nil)
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

func load(fsys fs.FS, names []string, display func(string) string, cache *Cache) (*model.Config, error) {
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

	// Stage 1: syntax. The CUE files are parsed (and evaluated) only when
	// the cache does not hold them.
	var key [sha256.Size]byte
	var cached *model.Config
	if cache != nil && len(yamlFiles) == 0 {
		key = cueKey(cueFiles)
		cached = cache.get(key)
	}
	var parsedCUE *parsedCUE
	if cached == nil {
		var cueErrs source.Errors
		parsedCUE, cueErrs = parseCUE(cueFiles)
		errs = append(errs, cueErrs...)
	}
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

	if cached != nil && len(kubeDocs) > 0 {
		// Kubernetes objects in JSON: they merge into what CUE gives.
		cached = nil
		var cueErrs source.Errors
		if parsedCUE, cueErrs = parseCUE(cueFiles); len(cueErrs) > 0 {
			return nil, cueErrs
		}
	}

	// Stage 2: shape.
	cfg := cached
	if cfg == nil {
		var cueErrs source.Errors
		var err error
		cfg, cueErrs, err = evalCUE(parsedCUE)
		if err != nil {
			return nil, err
		}
		errs = append(errs, cueErrs...)
		if cache != nil && len(cueErrs) == 0 && len(yamlFiles)+len(kubeDocs) == 0 {
			cache.put(key, cfg)
		}
	}
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
