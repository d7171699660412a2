// An error the HTTP API reports to the client, in OpenAI's shape:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}} with an HTTP status.
// Request parsing and handlers throw it; the server turns it into the response.
#pragma once
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace strata::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::string param = "", std::string code = "")
      : std::runtime_error(message),
        status_(status),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}

  int status() const { return status_; }
  nlohmann::json body() const {
    auto opt = [](const std::string& s) {
      return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
    };
    return {{"error",
             {{"message", what()}, {"type", type_}, {"param", opt(param_)}, {"code", opt(code_)}}}};
  }

 private:
  int status_;
  std::string type_, param_, code_;
};

// 400 for a field with the wrong type or value; `param` names the field.
[[noreturn]] inline void bad_param(const std::string& param, const std::string& message,
                                   const std::string& code = "invalid_value") {
  throw ApiError(400, message, "invalid_request_error", param, code);
}

}  // namespace strata::serve
