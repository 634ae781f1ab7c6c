// Loads a backbone through the installed tlc library and describes a prediction: enough to show that the
// headers, the static library and its dependencies (LibTorch, OpenCV) link from another project.
#include <iostream>

#include "tlc/backbone.h"
#include "tlc/run.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer BACKBONE.pt\n";
    return 2;
  }
  tlc::Backbone b = tlc::Backbone::load(argv[1]);
  std::cout << "channels " << b.info().output_channels << "\n"
            << tlc::describe_prediction({0.97f, 0.03f}, {"dog", "cat"}, 2) << "\n";
  return 0;
}
