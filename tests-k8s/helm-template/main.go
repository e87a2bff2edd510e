// Command helm-template renders a Helm chart the way `helm template` does, for the subset of Helm
// that deploy/helm/hutch uses. It exists because no helm binary is installed on the machines that
// run the Kubernetes suite and none can be downloaded there (no GitHub access); Go's text/template
// and sprig (Debian's golang-github-masterminds-sprig-dev) are what Helm itself is built on.
//
// Usage: helm-template [--name R] [--namespace N] [-f values.yaml]... CHART_DIR
//
// What it implements, as Helm 3 does (pkg/engine, pkg/chartutil):
//   - .Values: the chart's values.yaml, then each -f file deep-merged over it (maps merge, other
//     values replace; a null deletes the key);
//   - .Release (Name, Namespace, Service "Helm", IsInstall true, IsUpgrade false, Revision 1),
//     .Chart (the Chart.yaml fields, Helm's capitalised names), .Template (Name, BasePath);
//   - every file under templates/ is parsed into one template set (so `define` in _helpers.tpl is
//     visible everywhere); files whose name starts with "_" are not rendered;
//   - functions: sprig's (without env/expandenv, which Helm removes), include, required, fail,
//     toYaml, fromYaml, toJson; missing keys render as empty (Helm's "<no value>" replacement);
//   - output: each rendered file that is not blank, as "---\n# Source: <chart>/templates/<file>\n".
//
// Not implemented (the chart must not use them): --set, tpl, lookup, .Capabilities, .Files,
// subcharts, hooks, values.schema.json, NOTES.txt. Documents come out in file-name order, not in
// Helm's install order by kind.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// normalize turns yaml.v2's map[interface{}]interface{} into map[string]interface{}, as Helm's
// YAML reader (sigs.k8s.io/yaml, through JSON) does.
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		out := make(map[string]interface{}, len(t))
		for k, val := range t {
			out[fmt.Sprint(k)] = normalize(val)
		}
		return out
	case []interface{}:
		for i, val := range t {
			t[i] = normalize(val)
		}
		return t
	default:
		return v
	}
}

func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := normalize(raw).(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a YAML mapping", path)
	}
	return m, nil
}

// merge deep-merges src over dst (Helm's coalescing of user values over chart defaults).
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sm, sok := v.(map[string]interface{})
		dm, dok := dst[k].(map[string]interface{})
		if sok && dok {
			dst[k] = merge(dm, sm)
		} else {
			dst[k] = v
		}
	}
	return dst
}

// chartMeta maps Chart.yaml's keys to the names templates use (.Chart.Name, .Chart.AppVersion).
func chartMeta(raw map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range raw {
		if k == "" {
			continue
		}
		out[strings.ToUpper(k[:1])+k[1:]] = v
	}
	return out
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		// Helm's toYaml swallows errors into an empty string, too.
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func main() {
	name := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	var files valueFiles
	flag.Var(&files, "f", "values file (repeatable; later files win)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-template [--name R] [--namespace N] [-f values.yaml]... CHART_DIR")
		os.Exit(2)
	}
	if err := render(flag.Arg(0), *name, *namespace, files); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func render(dir, name, namespace string, files []string) error {
	chartRaw, err := readYAML(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return err
	}
	chart := chartMeta(chartRaw)
	chartName, _ := chart["Name"].(string)
	values, err := readYAML(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		user, err := readYAML(f)
		if err != nil {
			return err
		}
		values = merge(values, user)
	}

	paths, err := filepath.Glob(filepath.Join(dir, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(paths)
	root := template.New("chart")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		var raw interface{}
		if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		m, _ := normalize(raw).(map[string]interface{})
		return m
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, fmt.Errorf("%s", msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	funcs["fail"] = func(msg string) (string, error) { return "", fmt.Errorf("%s", msg) }
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	root.Funcs(funcs).Option("missingkey=zero")

	var rendered []string
	for _, p := range paths {
		base := filepath.Base(p)
		if !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") && !strings.HasSuffix(base, ".tpl") {
			continue
		}
		text, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tplName := chartName + "/templates/" + base
		if _, err := root.New(tplName).Parse(string(text)); err != nil {
			return err
		}
		if !strings.HasPrefix(base, "_") {
			rendered = append(rendered, tplName)
		}
	}

	var out strings.Builder
	for _, tplName := range rendered {
		data := map[string]interface{}{
			"Values": values,
			"Chart":  chart,
			"Release": map[string]interface{}{
				"Name": name, "Namespace": namespace, "Service": "Helm",
				"IsInstall": true, "IsUpgrade": false, "Revision": 1,
			},
			"Template": map[string]interface{}{"Name": tplName, "BasePath": chartName + "/templates"},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, tplName, data); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", tplName, strings.TrimSpace(text))
	}
	_, err = os.Stdout.WriteString(out.String())
	return err
}
