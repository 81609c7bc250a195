// The Python module fusedlse_cuda._C. Importing it registers the ops (the TORCH_LIBRARY blocks of the other
// sources); its one function is the eager forward's short way into the dispatcher.

#include <ATen/ATen.h>
#include <ATen/PythonTorchFunctionTLS.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <Python.h>

#include <array>
#include <tuple>

namespace fusedlse {
namespace {

using ForwardSignature = std::tuple<at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&, const at::Tensor&, at::IntArrayRef,
    at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t, bool);

const c10::TypedOperatorHandle<ForwardSignature>& forward_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("fusedlse::forward", "").typed<ForwardSignature>();
  return op;
}

// _C.forward_no_grad(x, weight, conv_bias, bias): torch.ops.fusedlse.forward(x, weight, conv_bias, bias,
// keep_sums=False)[0] with nn.ConvTranspose2d's default settings, dispatched below autograd from here, or
// NotImplemented where that would not be the same call: an argument that is not a plain tensor (or nn.Parameter,
// which is one to torch), a __torch_function__ mode, an argument that needs a gradient with grad mode on.
// ops.forward calls it after its own checks (torch.compile, forward-mode AD and torch.func transforms) and takes the
// Python op on NotImplemented. What it saves is the Python op's own call: OpOverload's parse of the arguments against
// the schema and the context manager that leaves autograd out, most of the difference between kb_old's eager forward
// and torch's x.sum(dim=(2, 3)) on the H200's host (docs/limits.md §55).
PyObject* forward_no_grad(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs != 4) {
    PyErr_Format(PyExc_TypeError, "forward_no_grad expects 4 arguments (x, weight, conv_bias, bias), got %zd", nargs);
    return nullptr;
  }
  const bool plain = THPVariable_CheckExact(args[0]) && THPVariable_CheckExact(args[1]) &&
                     (args[2] == Py_None || THPVariable_CheckExact(args[2])) && THPVariable_CheckExact(args[3]) &&
                     !at::impl::torch_function_mode_enabled();
  if (!plain) Py_RETURN_NOTIMPLEMENTED;
  const at::Tensor& x = THPVariable_Unpack(args[0]);
  const at::Tensor& weight = THPVariable_Unpack(args[1]);
  const at::Tensor& bias = THPVariable_Unpack(args[3]);
  c10::optional<at::Tensor> conv_bias;
  if (args[2] != Py_None) conv_bias = THPVariable_Unpack(args[2]);
  if (at::GradMode::is_enabled() &&
      (x.requires_grad() || weight.requires_grad() || bias.requires_grad() ||
       (conv_bias && conv_bias->requires_grad()))) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  static constexpr std::array<int64_t, 2> kOnes{1, 1}, kZeros{0, 0};
  at::Tensor out;
  {
    pybind11::gil_scoped_release no_gil;  // as the Python op's call does: other threads run while the op does
    const at::AutoDispatchBelowAutograd below_autograd;
    // keep_sums false: no backward will run (ops.forward's rule).
    out = std::get<0>(forward_op().call(x, weight, conv_bias, bias, kOnes, kZeros, kZeros, kOnes, 1, false));
  }
  return THPVariable_Wrap(std::move(out));
  END_HANDLE_TH_ERRORS
}

PyMethodDef methods[] = {
    {"forward_no_grad", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(forward_no_grad)), METH_FASTCALL,
     "forward(x, weight, conv_bias, bias) below autograd, or NotImplemented (see ops.forward)"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace
}  // namespace fusedlse

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, fusedlse::methods};
  return PyModule_Create(&module_def);
}
