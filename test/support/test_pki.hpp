// Certificates made by the test (OpenSSL API): a CA and leaves signed by it,
// written as PEM files into a directory.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace tether::test {

struct pki_files {
    std::filesystem::path ca_cert;
    std::filesystem::path cert;  ///< leaf chain (leaf only; the CA is the trust anchor)
    std::filesystem::path key;
};

/// Creates (once per directory) a CA, and a leaf valid for `dns_names` and
/// `ip_addresses`, named `leaf_name`.pem / `leaf_name`.key.
/// `expired`: the leaf's validity ended an hour ago.
pki_files make_pki(const std::filesystem::path& dir, const std::string& leaf_name,
                   const std::vector<std::string>& dns_names, const std::vector<std::string>& ip_addresses,
                   bool expired = false);

/// A CRL of the CA in `dir` (made by make_pki) that revokes `revoked`
/// (leaf certificate files), written to `dir`/ca.crl.pem; its path.
std::filesystem::path make_crl(const std::filesystem::path& dir,
                               const std::vector<std::filesystem::path>& revoked);

}  // namespace tether::test
