#pragma once
// Loads and validates a ctlb configuration file. Every error is one line:
//   FILE:LINE:COLUMN: KEY: what was expected (what was found)
#include <string>

#include "config/config.hpp"
#include "dataplane/common/result.hpp"

namespace ctlb::config {

Result<Config> load_file(const std::string& path);
Result<Config> load_string(const std::string& yaml, const std::string& name);

}  // namespace ctlb::config
