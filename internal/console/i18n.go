package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"

	"golang.org/x/text/language"
)

// The message catalogs: one JSON object of key to text per language, the
// text a fmt format when the key takes arguments.
//
//go:embed locales/*.json
var localeFS embed.FS

// languages the console speaks; the first is the fallback.
var languages = []language.Tag{language.English, language.Japanese}

var matcher = language.NewMatcher(languages)

// catalog is one language's messages.
type catalog struct {
	lang string
	msgs map[string]string
}

// catalogs loads every embedded catalog; a key missing in one language
// falls back to English (a test checks none is missing).
func loadCatalogs() (map[string]*catalog, error) {
	out := map[string]*catalog{}
	for _, tag := range languages {
		base, _ := tag.Base()
		name := path.Join("locales", base.String()+".json")
		b, err := localeFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		c := &catalog{lang: base.String(), msgs: map[string]string{}}
		if err := json.Unmarshal(b, &c.msgs); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[c.lang] = c
	}
	return out, nil
}

// pickLanguage chooses the catalog for a request from its Accept-Language
// (x/text's matcher: ja-JP, ja;q=0.9, en-GB all find their language).
func pickLanguage(r *http.Request) string {
	tag, _ := language.MatchStrings(matcher, r.Header.Get("Accept-Language"))
	base, _ := tag.Base()
	return base.String()
}

// text is the message key in c (English when c lacks it, the key itself
// when both do, so a missing message shows up instead of a blank).
func (c *catalog) text(fallback *catalog, key string, args ...any) string {
	m, ok := c.msgs[key]
	if !ok && fallback != nil {
		m, ok = fallback.msgs[key]
	}
	if !ok {
		return key
	}
	if len(args) == 0 || !strings.Contains(m, "%") {
		return m
	}
	return fmt.Sprintf(m, args...)
}
