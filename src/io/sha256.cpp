// SHA-256 through OpenSSL's EVP interface (see sha256.hpp).
#include "io/sha256.hpp"

#include <fstream>
#include <memory>
#include <openssl/evp.h>
#include <vector>

#include "core/error.hpp"

namespace pfcr {
namespace {

struct MdCtx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    MdCtx() {
        check(ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1, "sha256: init failed");
    }
    ~MdCtx() { EVP_MD_CTX_free(ctx); }
    void update(const void* p, size_t n) {
        check(EVP_DigestUpdate(ctx, p, n) == 1, "sha256: update failed");
    }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        check(EVP_DigestFinal_ex(ctx, md, &len) == 1, "sha256: final failed");
        static constexpr char digits[] = "0123456789abcdef";
        std::string out;
        for (unsigned i = 0; i < len; ++i) {
            out += digits[md[i] >> 4];
            out += digits[md[i] & 15];
        }
        return out;
    }
};

} // namespace

std::string sha256_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    check(bool(f), path, ": cannot open for hashing");
    MdCtx md;
    std::vector<char> buf(1 << 20);
    while (f) {
        f.read(buf.data(), std::streamsize(buf.size()));
        md.update(buf.data(), size_t(f.gcount()));
    }
    return md.hex();
}

std::string sha256_hex(const void* data, size_t size) {
    MdCtx md;
    md.update(data, size);
    return md.hex();
}

} // namespace pfcr
