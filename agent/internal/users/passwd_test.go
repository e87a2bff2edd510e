package users

import (
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const passwdText = `root:x:0:0:root:/root:/bin/bash
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line without colons
bad:x:notanumber:1::/:/bin/sh
+nisentry::::::
user:x:1000:1000:Sandbox User,,,:/home/user:/bin/bash
empty:x:1001:1001:::
`

const groupText = `root:x:0:
sudo:x:27:user
adm:x:4:syslog, user
user:x:1000:
docker:x:999:other,user
junk:x:zz:user
sudo2:x:27:user
`

func writeDB(t *testing.T) DB {
	dir := t.TempDir()
	p := filepath.Join(dir, "passwd")
	g := filepath.Join(dir, "group")
	os.WriteFile(p, []byte(passwdText), 0o644)
	os.WriteFile(g, []byte(groupText), 0o644)
	return DB{PasswdPath: p, GroupPath: g}
}

func TestParsePasswd(t *testing.T) {
	entries, err := ParsePasswd(strings.NewReader(passwdText))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	if want := []string{"root", "daemon", "user", "empty"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("names = %v, want %v", names, want)
	}
	u := entries[2]
	if u.UID != 1000 || u.GID != 1000 || u.Home != "/home/user" || u.Shell != "/bin/bash" {
		t.Fatalf("user entry = %+v", u)
	}
}

func TestLookupGroupsAndDefaults(t *testing.T) {
	db := writeDB(t)
	u, err := db.Lookup("user")
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{1000, 27, 4, 999}; !reflect.DeepEqual(u.Groups, want) {
		t.Fatalf("groups = %v, want %v", u.Groups, want)
	}
	e, err := db.Lookup("empty")
	if err != nil || e.Home != "/" || e.Shell != "/bin/sh" {
		t.Fatalf("empty = %+v, %v", e, err)
	}
	if _, err := db.Lookup("nobody-here"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown lookup err = %v", err)
	}
	n := db.Names()
	if n.User(1000) != "user" || n.Group(27) != "sudo" || n.User(4242) != "4242" {
		t.Fatalf("names: %s %s %s", n.User(1000), n.Group(27), n.User(4242))
	}
}

func TestResolver(t *testing.T) {
	db := writeDB(t)
	req := func(auth string) *http.Request {
		r, _ := http.NewRequest("GET", "/", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }

	res := Resolver{DB: db, Default: "user"}
	if u, err := res.Resolve(req(""), ""); err != nil || u.Name != "user" {
		t.Fatalf("default: %v %v", u, err)
	}
	if u, err := res.Resolve(req(basic("root:")), ""); err != nil || u.Name != "root" {
		t.Fatalf("basic root: %v %v", u, err)
	}
	if u, err := res.Resolve(req(basic("root:")), "daemon"); err != nil || u.Name != "daemon" {
		t.Fatalf("explicit wins: %v %v", u, err)
	}
	_, err := res.Resolve(req(basic("ghost:")), "")
	var ue *UnknownUserError
	if !errors.As(err, &ue) || ue.Name != "ghost" || ue.Error() != `unknown user "ghost"` {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := res.Resolve(req("Basic !!!"), ""); err != ErrBadAuthorization {
		t.Fatalf("bad header: %v", err)
	}
	if u, err := res.Resolve(req("Bearer abc"), ""); err != nil || u.Name != "user" {
		t.Fatalf("other scheme ignored: %v %v", u, err)
	}
	// A default user missing from the image falls back to root.
	res.Default = "absent"
	if u, err := res.Resolve(req(""), ""); err != nil || u.Name != "root" || u.UID != 0 {
		t.Fatalf("fallback: %v %v", u, err)
	}
}
