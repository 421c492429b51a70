// SHA-256 of files (hex), recorded in manifests so stale derived files can be detected.
#pragma once

#include <string>

namespace pfcr {

std::string sha256_file(const std::string& path);
std::string sha256_hex(const void* data, size_t size);

} // namespace pfcr
