#pragma once
// GET /metrics: the served models' counters in Prometheus' text exposition format (version 0.0.4).
#include <memory>
#include <string>
#include <vector>

#include "model_runner.h"

namespace tlc::serve {

std::string prometheus_text(const std::vector<std::unique_ptr<ModelRunner>>& models);

}  // namespace tlc::serve
