package pipeline

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// processStart is when this process started (near enough: when the package
// was initialised). A temporary directory last touched before it belongs
// to an earlier process.
var processStart = time.Now()

// staleTempRE matches the suffix os.MkdirTemp gives the temporary
// directories of a model write (model/hf.WriteModel): ".OUT.tmp-N" while
// the model is written, ".OUT.old-N" while the previous one is swapped out.
var staleTempRE = regexp.MustCompile(`^\.(tmp|old)-[0-9]+$`)

// removeStaleTemps removes the temporary directories that a killed write
// of the local model directory out left beside it: ".BASE.tmp-N" (a partial
// model), and ".BASE.old-N" (the previous model, swapped out) only when out
// exists, since without out it holds the only copy of the previous model.
// Only directories matching exactly that pattern whose own and direct
// entries' modification times all precede before are removed (a write in
// progress keeps touching them); each removal is logged with log.Info, a
// kept ".old" directory with log.Warn. Failures are logged, not returned:
// the run does not depend on them.
func removeStaleTemps(out string, before time.Time, log *slog.Logger) {
	out = filepath.Clean(out)
	parent, base := filepath.Dir(out), filepath.Base(out)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	_, outErr := os.Stat(out)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "."+base)
		if !ok || !e.IsDir() || !staleTempRE.MatchString(rest) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		if !touchedBefore(p, before) {
			continue
		}
		if strings.HasPrefix(rest, ".old-") && outErr != nil {
			log.Warn("kept a directory a killed model write left beside the output: it holds the previous model, and the output is missing; rename it to the output or remove it", "dir", p, "out", out)
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			log.Warn("could not remove a temporary directory a killed model write left", "dir", p, "error", err)
			continue
		}
		log.Info("removed a temporary directory a killed model write left", "dir", p)
	}
}

// touchedBefore reports whether dir and its direct entries were all last
// modified before t.
func touchedBefore(dir string, t time.Time) bool {
	st, err := os.Lstat(dir)
	if err != nil || !st.ModTime().Before(t) {
		return false
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(t) {
			return false
		}
	}
	return true
}
