package crd

import "strings"

// irregular plurals, by lower-case singular.
var irregularPlurals = map[string]string{
	"person": "people", "child": "children", "man": "men", "woman": "women",
	"mouse": "mice", "goose": "geese", "foot": "feet", "tooth": "teeth",
	"index": "indices", "matrix": "matrices", "vertex": "vertices", "datum": "data",
	"criterion": "criteria", "schema": "schemas", "quiz": "quizzes", "ox": "oxen",
	"alias": "aliases", "status": "statuses", "use": "uses", "news": "news",
	"series": "series", "species": "species", "equipment": "equipment",
	"information": "information", "metadata": "metadata", "policy": "policies",
}

// pluralSuffixes are (singular suffix, plural suffix) rules, first match
// wins, in the spirit of the inflection rules controller-gen uses.
var pluralSuffixes = [][2]string{
	{"tive", "tives"}, {"eaf", "eaves"}, {"oaf", "oaves"}, {"afe", "aves"}, {"arf", "arves"},
	{"rfe", "rves"}, {"rf", "rves"}, {"lf", "lves"}, {"fe", "ves"},
	{"ay", "ays"}, {"ey", "eys"}, {"oy", "oys"}, {"quy", "quies"}, {"uy", "uys"}, {"y", "ies"},
	{"eau", "eaux"}, {"ium", "ia"}, {"trix", "trices"},
	{"ysis", "yses"}, {"ouse", "ouses"}, {"lause", "lauses"}, {"us", "uses"},
	{"ch", "ches"}, {"io", "ios"}, {"sh", "shes"}, {"ss", "sses"},
	{"ez", "ezzes"}, {"iz", "izzes"}, {"tz", "tzes"}, {"zz", "zzes"},
	{"ano", "anos"}, {"lo", "los"}, {"to", "tos"}, {"oo", "oos"}, {"o", "oes"}, {"x", "xes"},
}

// plural returns the lower-case plural of a kind, as written in a CRD's
// resource path. Set +kubebuilder:resource:path when a kind's plural is
// unusual.
func plural(kind string) string {
	lower := strings.ToLower(kind)
	// Inflect the last word of a CamelCase kind.
	last := 0
	for i := 1; i < len(kind); i++ {
		if kind[i] >= 'A' && kind[i] <= 'Z' && (kind[i-1] < 'A' || kind[i-1] > 'Z') {
			last = i
		}
	}
	head, word := lower[:last], lower[last:]
	if p, ok := irregularPlurals[word]; ok {
		return head + p
	}
	for _, r := range pluralSuffixes {
		if strings.HasSuffix(word, r[0]) {
			return head + strings.TrimSuffix(word, r[0]) + r[1]
		}
	}
	if strings.HasSuffix(word, "s") {
		return lower
	}
	return lower + "s"
}
