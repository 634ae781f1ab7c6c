#pragma once
// Text for people and for other programs: numbers and counts in messages, names that must be UTF-8,
// labels drawn with a font that only has ASCII.
#include <cstdint>
#include <string>
#include <vector>

namespace tlc {

// A number as a person writes it in a message: 0.1, 1e-05, 250 (printf's %g), not std::to_string's 0.100000.
std::string format_number(double v);

// "1 epoch", "3 epochs": the count and the noun, plural when the count is not one.
std::string count_noun(int64_t n, const std::string& singular, const std::string& plural = "");

// File and folder names are bytes, model files and JSON need UTF-8. escape_name keeps valid UTF-8 as it is
// and writes each byte that is not part of valid UTF-8 as \xNN (and a backslash as \\, so that the mapping
// is reversible); unescape_name undoes it. Names without backslashes or invalid bytes are unchanged.
bool is_valid_utf8(const std::string& s);
// Each name's bytes in lower-case hex ("caf\xe9" -> "636166e9"): raw names in JSON, which must be UTF-8.
std::vector<std::string> hex_bytes(const std::vector<std::string>& names);
std::string escape_name(const std::string& raw);
std::string unescape_name(const std::string& escaped);

// A UTF-8 text in ASCII for OpenCV's Hershey fonts, which have no other glyphs: Latin letters lose their
// accents (é -> e, ß -> ss), Greek and Cyrillic are romanised (Кот -> Kot), anything else becomes its code
// point (猫 -> U+732B). `changed` (optional) says whether anything was not ASCII.
std::string transliterate_ascii(const std::string& utf8, bool* changed = nullptr);

}  // namespace tlc
