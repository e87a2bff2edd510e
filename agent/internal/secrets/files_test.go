package secrets

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"hutch/agent/internal/users"
)

func handler(t *testing.T) (*Handler, string) {
	dir := filepath.Join(t.TempDir(), "secrets")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if uid == 0 {
		uid, gid = 1234, 1234 // root can give the file away, as the agent does
	}
	etc := t.TempDir()
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nuser:x:%d:%d::/home/user:/bin/sh\n", uid, gid)
	group := fmt.Sprintf("root:x:0:\nuser:x:%d:\n", gid)
	if os.WriteFile(etc+"/passwd", []byte(passwd), 0o644) != nil || os.WriteFile(etc+"/group", []byte(group), 0o644) != nil {
		t.Fatal("cannot write the account files")
	}
	db := users.DB{PasswdPath: etc + "/passwd", GroupPath: etc + "/group"}
	return &Handler{Dir: dir, Users: users.Resolver{DB: db, Default: "user"}}, dir
}

func post(h http.Handler, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hutch/secret-files", strings.NewReader(body)))
	return rec
}

func TestWritesMode0400OwnedByDefaultUser(t *testing.T) {
	h, dir := handler(t)
	path := dir + "/nested/token"
	// "czNjcjN0" is base64 of "s3cr3t".
	rec := post(h, `{"files":[{"path":"`+path+`","data":"czNjcjN0"}]}`)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o400 {
		t.Errorf("mode %v, want 0400", st.Mode().Perm())
	}
	u, _ := h.Users.DefaultUser()
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != u.UID || sys.Gid != u.GID {
		t.Errorf("owner %d:%d, want %d:%d", sys.Uid, sys.Gid, u.UID, u.GID)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "s3cr3t" {
		t.Errorf("content %q, %v", data, err)
	}
	// A second write replaces the file (no leftover temporary files).
	if rec := post(h, `{"files":[{"path":"`+path+`","data":"bmV3"}]}`); rec.Code != http.StatusNoContent {
		t.Fatalf("rewrite: status %d: %s", rec.Code, rec.Body.String())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("entries after rewrite: %v", entries)
	}
}

func TestRefusesPathsOutsideAndSymlinks(t *testing.T) {
	h, dir := handler(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, dir+"/link"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/passwd", dir + "/../x", dir + "/link/x", dir} {
		if rec := post(h, `{"files":[{"path":"`+p+`","data":"eA=="}]}`); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d", p, rec.Code)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote through a symlink: %v", entries)
	}
}

func TestRefusesADirThatIsNotTmpfs(t *testing.T) {
	h, dir := handler(t)
	h.FSType = 0x7fff0001 // no filesystem has this type
	rec := post(h, `{"files":[{"path":"`+dir+`/x","data":"eA=="}]}`)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "tmpfs") {
		t.Errorf("status %d body %q", rec.Code, rec.Body.String())
	}
}
