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

// A setting as the Python op would pass it on: an exact int (not a bool) within int64, or (plain_pair) such an int
// or a tuple or list of two (shape.pair's result for these). false for anything else: ops.forward then parses it in
// Python, and refuses what nn.ConvTranspose2d would (floats, say) with its own errors.
bool plain_int(PyObject* value, int64_t& number) {
  if (!PyLong_CheckExact(value)) return false;
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
  if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return false;
  }
  number = v;
  return true;
}

bool plain_pair(PyObject* value, std::array<int64_t, 2>& pair) {
  if (PyLong_CheckExact(value)) {
    if (!plain_int(value, pair[0])) return false;
    pair[1] = pair[0];
    return true;
  }
  if (!(PyTuple_CheckExact(value) || PyList_CheckExact(value)) || PySequence_Fast_GET_SIZE(value) != 2) return false;
  return plain_int(PySequence_Fast_GET_ITEM(value, 0), pair[0]) &&
         plain_int(PySequence_Fast_GET_ITEM(value, 1), pair[1]);
}

// _C.forward_no_grad(x, weight, conv_bias, bias[, stride, padding, output_padding, dilation, groups]):
// torch.ops.fusedlse.forward(x, weight, conv_bias, bias, ..., keep_sums=False)[0] with those settings (without them,
// nn.ConvTranspose2d's defaults), dispatched below autograd from here, or NotImplemented where that would not be the
// same call: an argument that is not a plain tensor (or nn.Parameter, which is one to torch), a setting that is not
// plain (plain_pair; groups an exact int), a __torch_function__ mode, an argument that needs a gradient with grad
// mode on. ops.forward calls it after its own checks (torch.compile, forward-mode AD and torch.func transforms) and
// takes the Python op on NotImplemented. What it saves is the Python op's own call: OpOverload's parse of the
// arguments against the schema and the context manager that leaves autograd out, most of the difference between
// kb_old's eager forward and torch's x.sum(dim=(2, 3)) on the H200's host (docs/limits.md §55); with settings, the
// Python parse of them as well (docs/limits.md §63).
PyObject* forward_no_grad(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs != 4 && nargs != 9) {
    PyErr_Format(PyExc_TypeError,
                 "forward_no_grad expects 4 arguments (x, weight, conv_bias, bias) or 9 (those, stride, padding, "
                 "output_padding, dilation, groups), got %zd",
                 nargs);
    return nullptr;
  }
  std::array<int64_t, 2> stride{1, 1}, padding{0, 0}, output_padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  if (nargs == 9 && !(plain_pair(args[4], stride) && plain_pair(args[5], padding) &&
                      plain_pair(args[6], output_padding) && plain_pair(args[7], dilation) &&
                      plain_int(args[8], groups))) {
    Py_RETURN_NOTIMPLEMENTED;
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
  at::Tensor out;
  {
    pybind11::gil_scoped_release no_gil;  // as the Python op's call does: other threads run while the op does
    const at::AutoDispatchBelowAutograd below_autograd;
    // keep_sums false: no backward will run (ops.forward's rule).
    out = std::get<0>(forward_op().call(x, weight, conv_bias, bias, stride, padding, output_padding, dilation, groups,
                                          false));
  }
  return THPVariable_Wrap(std::move(out));
  END_HANDLE_TH_ERRORS
}

PyMethodDef methods[] = {
    {"forward_no_grad", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(forward_no_grad)), METH_FASTCALL,
     "forward(x, weight, conv_bias, bias[, stride, padding, output_padding, dilation, groups]) below autograd, or "
     "NotImplemented (see ops.forward)"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace
}  // namespace fusedlse

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, fusedlse::methods};
  return PyModule_Create(&module_def);
}
