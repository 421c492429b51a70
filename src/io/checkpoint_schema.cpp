// See checkpoint_schema.hpp.
#include "io/checkpoint_schema.hpp"

namespace pfcr::ckpt {

std::optional<std::string> parameter_of(const std::string& tensor) {
    for (const std::string& prefix : {model_tensor(""), best_tensor(""), control_tensor("")})
        if (tensor.rfind(prefix, 0) == 0 && tensor.size() > prefix.size())
            return tensor.substr(prefix.size());
    const std::string optim_prefix = std::string(optim) + "/";
    if (tensor.rfind(optim_prefix, 0) == 0 && tensor.size() > optim_prefix.size() + 2 &&
        (tensor.ends_with("/m") || tensor.ends_with("/v")))
        return tensor.substr(optim_prefix.size(), tensor.size() - optim_prefix.size() - 2);
    return std::nullopt;
}

} // namespace pfcr::ckpt
