#include "tlc/text.h"

#include <cstdio>

namespace tlc {
namespace {

// Decodes the UTF-8 sequence at s[i]; returns its length (0 when the bytes there are not valid UTF-8:
// a stray continuation byte, a truncated sequence, an overlong form, a surrogate or a value past U+10FFFF).
size_t utf8_sequence(const std::string& s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  uint32_t v;
  if (c >= 0xC2 && c <= 0xDF) { n = 2; v = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; v = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; v = c & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) return 0;
  *cp = v;
  return n;
}

// U+00C0..U+00FF
const char* const kLatin1[64] = {
    "A", "A", "A", "A", "A", "A", "AE", "C", "E", "E", "E", "E", "I", "I", "I", "I",
    "D", "N", "O", "O", "O", "O", "O", "x", "O", "U", "U", "U", "U", "Y", "Th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "/", "o", "u", "u", "u", "u", "y", "th", "y"};
// U+0100..U+017F
const char* const kLatinExtA[128] = {
    "A", "a", "A", "a", "A", "a", "C", "c", "C", "c", "C", "c", "C", "c", "D", "d",
    "D", "d", "E", "e", "E", "e", "E", "e", "E", "e", "E", "e", "G", "g", "G", "g",
    "G", "g", "G", "g", "H", "h", "H", "h", "I", "i", "I", "i", "I", "i", "I", "i",
    "I", "i", "IJ", "ij", "J", "j", "K", "k", "k", "L", "l", "L", "l", "L", "l", "L",
    "l", "L", "l", "N", "n", "N", "n", "N", "n", "n", "N", "n", "O", "o", "O", "o",
    "O", "o", "OE", "oe", "R", "r", "R", "r", "R", "r", "S", "s", "S", "s", "S", "s",
    "S", "s", "T", "t", "T", "t", "T", "t", "U", "u", "U", "u", "U", "u", "U", "u",
    "U", "u", "U", "u", "W", "w", "Y", "y", "Y", "Z", "z", "Z", "z", "Z", "z", "s"};
// U+0391..U+03A9 (U+03A2 is unassigned); the small letters U+03B1..U+03C9 are these, lower-cased.
const char* const kGreek[25] = {"A", "B", "G", "D", "E", "Z", "I", "Th", "I", "K", "L", "M", "N",
                                "X", "O", "P", "R", "S", "S", "T", "Y", "F", "Ch", "Ps", "O"};
// U+0410..U+042F; the small letters U+0430..U+044F are these, lower-cased.
const char* const kCyrillic[32] = {"A", "B", "V", "G", "D", "E", "Zh", "Z", "I", "Y", "K", "L", "M", "N", "O", "P",
                                   "R", "S", "T", "U", "F", "Kh", "Ts", "Ch", "Sh", "Shch", "", "Y", "", "E", "Yu", "Ya"};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

std::string ascii_for(uint32_t cp) {
  if (cp >= 0xC0 && cp <= 0xFF) return kLatin1[cp - 0xC0];
  if (cp >= 0x100 && cp <= 0x17F) return kLatinExtA[cp - 0x100];
  if (cp >= 0x391 && cp <= 0x3A9) return kGreek[cp - 0x391];
  if (cp >= 0x3B1 && cp <= 0x3C9) return lower(kGreek[cp - 0x3B1]);
  if (cp >= 0x410 && cp <= 0x42F) return kCyrillic[cp - 0x410];
  if (cp >= 0x430 && cp <= 0x44F) return lower(kCyrillic[cp - 0x430]);
  switch (cp) {
    case 0x386: return "A";   // Greek capitals and small letters with accents (tonos, dialytika)
    case 0x388: return "E";
    case 0x389: case 0x38A: return "I";
    case 0x38C: return "O";
    case 0x38E: return "Y";
    case 0x38F: return "O";
    case 0x3AC: return "a";
    case 0x3AD: return "e";
    case 0x3AE: case 0x3AF: case 0x3CA: case 0x390: return "i";
    case 0x3CC: return "o";
    case 0x3CD: case 0x3CB: case 0x3B0: return "y";
    case 0x3CE: return "o";
    case 0x401: return "Yo";
    case 0x451: return "yo";
    case 0xA0: return " ";
    case 0x2018: case 0x2019: return "'";
    case 0x201C: case 0x201D: return "\"";
    case 0x2013: case 0x2014: return "-";
    default: break;
  }
  char b[16];
  std::snprintf(b, sizeof b, "U+%04X", static_cast<unsigned>(cp));
  return b;
}

}  // namespace

std::string format_number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

std::string count_noun(int64_t n, const std::string& singular, const std::string& plural) {
  return std::to_string(n) + " " + (n == 1 ? singular : plural.empty() ? singular + "s" : plural);
}

bool is_valid_utf8(const std::string& s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence(s, i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::vector<std::string> hex_bytes(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    std::string h;
    for (unsigned char c : n) h += "0123456789abcdef"[c >> 4], h += "0123456789abcdef"[c & 15];
    out.push_back(h);
  }
  return out;
}

std::string escape_name(const std::string& raw) {
  std::string out;
  uint32_t cp;
  for (size_t i = 0; i < raw.size();) {
    size_t n = utf8_sequence(raw, i, &cp);
    if (n == 0) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02X", static_cast<unsigned>(static_cast<unsigned char>(raw[i])));
      out += b;
      ++i;
    } else if (raw[i] == '\\') {
      out += "\\\\";
      ++i;
    } else {
      out.append(raw, i, n);
      i += n;
    }
  }
  return out;
}

std::string unescape_name(const std::string& e) {
  std::string out;
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  for (size_t i = 0; i < e.size(); ++i) {
    if (e[i] == '\\' && i + 1 < e.size() && e[i + 1] == '\\') {
      out += '\\';
      ++i;
    } else if (e[i] == '\\' && i + 3 < e.size() && e[i + 1] == 'x' && hex(e[i + 2]) >= 0 && hex(e[i + 3]) >= 0) {
      out += static_cast<char>(hex(e[i + 2]) * 16 + hex(e[i + 3]));
      i += 3;
    } else {
      out += e[i];
    }
  }
  return out;
}

std::string transliterate_ascii(const std::string& s, bool* changed) {
  std::string out;
  bool any = false;
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence(s, i, &cp);
    if (n == 0) {  // not UTF-8 at all: show the byte
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02X", static_cast<unsigned>(static_cast<unsigned char>(s[i])));
      out += b;
      any = true;
      ++i;
      continue;
    }
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else {
      out += ascii_for(cp);
      any = true;
    }
    i += n;
  }
  if (changed) *changed = any;
  return out;
}

}  // namespace tlc
