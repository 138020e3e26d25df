#pragma once
// Umbrella header of the taep library.
#include "taep/config.hpp"
#include "taep/distributed.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/problem.hpp"
#include "taep/result.hpp"
#include "taep/score_callback.hpp"
