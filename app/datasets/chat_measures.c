/* The fast check's pass over the messages of decoded chats (app/datasets/fast_records.py), in one walk.
 *
 * Built by scripts/build_native.py into app/datasets/_chat_measures; where it is not built, fast_records runs the
 * same pass in Python (map and numpy, one C-level call per message and measure), which costs a quarter of a
 * validation. It reads only what msgspec's typed structures hold: a record's `messages` (a list), each message's
 * `role` (one of the roles given, the very objects msgspec's Literal returns) and `content` (a str).
 *
 * measure(records, roles, assistant) -> None when some content is only whitespace (str.isspace), else
 *   (every record ends with a message of role assistant,
 *    messages per record: bytes of native int64, characters of content per record: bytes of native int64,
 *    messages per role: a tuple in the order of roles).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_ROLES 16

static PyObject *MESSAGES, *ROLE, *CONTENT;

/* Whether text holds only whitespace, as str.isspace says (False for an empty text). */
static int only_whitespace(PyObject *text) {
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t at = 0; at < length; at++) {
        if (!Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, at)))
            return 0;
    }
    return length > 0;
}

/* Which of the roles role is (-1: none); by identity first, as msgspec hands back the Literal's own objects. */
static Py_ssize_t role_index(PyObject *roles, PyObject *role) {
    Py_ssize_t count = PyTuple_GET_SIZE(roles);
    for (Py_ssize_t index = 0; index < count; index++) {
        if (PyTuple_GET_ITEM(roles, index) == role)
            return index;
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        int equal = PyObject_RichCompareBool(PyTuple_GET_ITEM(roles, index), role, Py_EQ);
        if (equal < 0)
            return -2;
        if (equal)
            return index;
    }
    return -1;
}

/* Measure one message into the counts; 1 when it is blank, 0 when not, -1 on error. last: its role (borrowed). */
static int measure_message(PyObject *message, PyObject *roles, long long *counts, long long *characters,
                           PyObject **last) {
    PyObject *role = PyObject_GetAttr(message, ROLE);
    if (role == NULL)
        return -1;
    PyObject *content = PyObject_GetAttr(message, CONTENT);
    if (content == NULL || !PyUnicode_Check(content)) {
        Py_DECREF(role);
        Py_XDECREF(content);
        if (content != NULL)
            PyErr_SetString(PyExc_TypeError, "a message's content must be a str");
        return -1;
    }
    Py_ssize_t index = role_index(roles, role);
    int blank = only_whitespace(content);
    *characters += PyUnicode_GET_LENGTH(content);
    *last = role;  /* still held by the message, which the record holds */
    Py_DECREF(role);
    Py_DECREF(content);
    if (index == -2)
        return -1;
    if (index >= 0)
        counts[index]++;
    return blank;
}

/* Measure one record's messages: 1 when one is blank, 0 when none is, -1 on error. ends_answered is cleared
 * unless its last message is the assistant's. */
static int measure_record(PyObject *record, PyObject *roles, PyObject *assistant, long long *counts,
                          long long *size, long long *characters, int *ends_answered) {
    PyObject *messages = PyObject_GetAttr(record, MESSAGES);
    if (messages == NULL)
        return -1;
    if (!PyList_Check(messages)) {
        Py_DECREF(messages);
        PyErr_SetString(PyExc_TypeError, "a record's messages must be a list");
        return -1;
    }
    PyObject *last = NULL;
    int found = 0;
    *size = PyList_GET_SIZE(messages);
    *characters = 0;
    for (Py_ssize_t index = 0; index < *size && found == 0; index++)
        found = measure_message(PyList_GET_ITEM(messages, index), roles, counts, characters, &last);
    if (found == 0 && (last == NULL || (last != assistant && PyObject_RichCompareBool(last, assistant, Py_EQ) != 1))) {
        *ends_answered = 0;
        PyErr_Clear();  /* a failed comparison only means "not the assistant" */
    }
    Py_DECREF(messages);
    return found;
}

/* The role counts as a tuple of ints. */
static PyObject *per_role(const long long *counts, Py_ssize_t roles) {
    PyObject *numbers = PyTuple_New(roles);
    for (Py_ssize_t index = 0; numbers != NULL && index < roles; index++) {
        PyObject *number = PyLong_FromLongLong(counts[index]);
        if (number == NULL)
            Py_CLEAR(numbers);
        else
            PyTuple_SET_ITEM(numbers, index, number);
    }
    return numbers;
}

static PyObject *measure(PyObject *module, PyObject *args) {
    PyObject *records, *roles, *assistant;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyList_Type, &records, &PyTuple_Type, &roles, &assistant))
        return NULL;
    if (PyTuple_GET_SIZE(roles) > MAX_ROLES) {
        PyErr_SetString(PyExc_ValueError, "too many roles");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(records);
    PyObject *sizes = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(long long));
    PyObject *characters = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(long long));
    long long counts[MAX_ROLES] = {0};
    int answered = 1, found = sizes == NULL || characters == NULL ? -1 : 0;
    for (Py_ssize_t at = 0; at < count && found == 0; at++)
        found = measure_record(PyList_GET_ITEM(records, at), roles, assistant, counts,
                               (long long *)PyBytes_AS_STRING(sizes) + at,
                               (long long *)PyBytes_AS_STRING(characters) + at, &answered);
    PyObject *numbers = found == 0 ? per_role(counts, PyTuple_GET_SIZE(roles)) : NULL;
    if (numbers == NULL) {
        Py_XDECREF(sizes);
        Py_XDECREF(characters);
        if (found > 0)  /* a blank content: the batch is refused, not an error */
            Py_RETURN_NONE;
        return NULL;
    }
    return Py_BuildValue("(ONNN)", answered ? Py_True : Py_False, sizes, characters, numbers);
}

static PyMethodDef METHODS[] = {
    {"measure", measure, METH_VARARGS, "Measure decoded chats in one walk (see the module's source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_chat_measures", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__chat_measures(void) {
    MESSAGES = PyUnicode_InternFromString("messages");
    ROLE = PyUnicode_InternFromString("role");
    CONTENT = PyUnicode_InternFromString("content");
    if (MESSAGES == NULL || ROLE == NULL || CONTENT == NULL)
        return NULL;
    return PyModule_Create(&MODULE);
}
