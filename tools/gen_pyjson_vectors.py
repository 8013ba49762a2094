#!/usr/bin/python3
"""Write tests/unit/pyjson_vectors.h: expected outputs computed by the Python the toolkit runs (the oracle).

    /usr/bin/python3 tools/gen_pyjson_vectors.py > tests/unit/pyjson_vectors.h

The C tests compare pyjson/hyperparameters against these tables; the build never runs this script.
"""
import json
import math
import random
import struct
import sys


def c(s):
    """A C string literal for text (WTF-8 bytes), usable in sizeof() to keep embedded NULs."""
    if isinstance(s, str):
        s = s.encode("utf-8", "surrogatepass")
    out = []
    for b in s:
        ch = chr(b)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def S(s):
    return "S(%s)" % c(s)


def pystr(v):
    return v if isinstance(v, str) else repr(v)


def dumps(v, sort_keys=True):
    return json.dumps(v, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=True)


PARSE_OK = [
    '1', '-0', '0', '12345678901234567890', '-12345678901234567890', '123456789012345678901234567890123456789',
    '1.0', '4.0', '-0.0', '0.1', '1e-5', '1E+16', '1e16', '1e15', '1.5e300', '1e22', '123456789012345680.0',
    '5e-324', '1e400', '-1e400', '2.5E-3', '0.0001', '1e-4', '0e0', '1.7976931348623157e308', '3.14159',
    'NaN', 'Infinity', '-Infinity', 'true', 'false', 'null', ' 5 ', '\t\n\r 5\r\n',
    '"adam"', '""', '"it\'s"', '"say \\"x\\""', '"it\'s \\"x\\""', '"a\\\\b"', '"\\/"', '"\\b\\f\\n\\r\\t"',
    '"\\u0000"', '"a\\u0000b"', '"\\u001f\\u007f"', '"\\u0085\\u00a0\\u2028\\u2029\\u200b\\ufeff"', '"caf\\u00e9"',
    '"café"', '"ß中Ω"', '"\\ud83d\\ude00"', '"😀"', '"\\ud83d"', '"\\ude00"', '"\\ud83d\\u0041"',
    '"\\udc00\\ud800"', '"\\ud83dx\\ude00"', '"\U000e0001"', '"\U0010ffff"', '"\\uffff"', '"\u0378"',
    '[1, 2.5, "s", null, true]', '["1", ["2", "3", [["6"]]]]', '["it\'s", "x"]', '[]', '{}', '[[[]]]',
    '{"y": 1}', '{"b": 1, "a": [1, 2], "c": {"z": null, "é": "é"}}', '{"a": 1, "a": 2, "b": 3}',
    '{"b": 1, "a": 2, "b": 3}', '{"": {"": []}}', '{"😀": "\\ud83d", "ä": 1, "z": 2, "A": 3}',
    '{"k": [1, {"x": null, "y": [true, false]}], "f": -0.0, "n": NaN}',
    '[1e-7, 1e-06, 100000000000000000000, 1e+20, 0.30000000000000004]',
]

PARSE_ERR = [
    '', '  ', 'adam', '1.2.3', '01', '1.', '1e', '1e+', '-', '-x', '-Inf', 'nul', 'tru', 'NaNx', 'true false',
    '[1,]', '[1 2]', '[1,,2]', '[1', '[', '{', '{"a"', '{"a" 1}', '{"a":}', '{"a":1,}', '{"a":1 "b":2}', '{,}',
    '{1: 2}', "'a'", '"abc', '"\\', '"a\nb"', '"a\x01"', '"\\q"', '"é\\x"', '"\\u12"', '"\\uZZZZ"', '"\\u00é"',
    '"\\u0041', '"\\ud83d\\uZZZZ"', '"\\ud83d\\u00"', '"\\ud83d\\ude00', '\ufeff1', '\u00a05', '[1]\n\n  x',
    '{"a":\n [1,\n  2,\n  x]}', '"é" é', '1' * 4301, '-' + '1' * 4301,
]


def gen_parse():
    w = sys.stdout.write
    w("/* json.loads(text) -> repr, json.dumps(sort_keys=True), json.dumps(sort_keys=False), str() */\n")
    w("static const struct parse_ok_vec { const char *in; size_t in_len; const char *repr; size_t repr_len;\n"
      "    const char *sorted; size_t sorted_len; const char *unsorted; size_t unsorted_len; const char *str;\n"
      "    size_t str_len; } parse_ok_vecs[] = {\n")
    for t in PARSE_OK:
        v = json.loads(t)
        w("    {%s,\n     %s,\n     %s,\n     %s,\n     %s},\n"
          % (S(t), S(repr(v)), S(dumps(v)), S(dumps(v, False)), S(pystr(v))))
    w("};\n\n")
    w("/* json.loads(text + '1' * ones) raises: str(exception) */\n")
    w("static const struct parse_err_vec { const char *in; size_t in_len; const char *msg; size_t ones; }"
      " parse_err_vecs[] = {\n")
    for t in PARSE_ERR:
        try:
            json.loads(t)
            raise SystemExit("expected an error for %r" % t)
        except ValueError as e:
            msg = str(e)
        if len(t) > 200:
            ones = len(t.lstrip("-"))
            assert t == t[:len(t) - ones] + "1" * ones
            w("    {%s, %s, %d},\n" % (S(t[:len(t) - ones]), c(msg), ones))
        else:
            w("    {%s, %s, 0},\n" % (S(t), c(msg)))
    w("};\n\n")


def gen_floats():
    random.seed(20240611)
    fl = [0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 3.0, 1e-05, 0.0001, 1e16, 1e15, 1e22, 1e23, 1.5e300, 5e-324,
          2.2250738585072014e-308, 1.7976931348623157e308, 123456789012345680.0, 9007199254740993.0,
          0.30000000000000004, 2.0 ** -1074, 2.0 ** 1023, 2.0 ** -1022, 2.0 ** 63, 2.0 ** 64, 1 / 3, 2 / 3,
          100.0, 1e-7, 1e-4, 999999999999999.9, 9999999999999998.0, 1234567.125, 4.35, 0.07, 1e100]
    while len(fl) < 80:
        fl.append(struct.unpack("<d", random.getrandbits(64).to_bytes(8, "little"))[0])
    while len(fl) < 140:
        fl.append(round(random.uniform(-1, 1) * 10 ** random.randint(-25, 25), random.randint(0, 18)))
    while len(fl) < 180:
        fl.append(math.ldexp(1.0, random.randint(-1074, 1023)))
    while len(fl) < 200:
        fl.append(float("%.*g" % (random.randint(1, 17), random.random() * 10 ** random.randint(-320, 300))))
    fl = [f for f in fl if not math.isnan(f)]
    w = sys.stdout.write
    w("/* repr(float) for doubles given by their bits */\n")
    w("static const struct float_vec { uint64_t bits; const char *repr; } float_vecs[] = {\n")
    for f in fl:
        w("    {0x%016xull, %s},\n" % (struct.unpack("<Q", struct.pack("<d", f))[0], c(repr(f))))
    w("};\n\n")


UPPER = ["", "abc", "learning-rate", "lr_2", "Straße", "ﬁle", "ŉ", "ǆ", "ǅ", "ΐ", "ᾳ", "ﬀ", "ı", "ſ", "é", "ÿ",
         "µ", "ɐ", "ꭓ", "𐐨", "𞤢", "ⓐ", "ǰ", "\ud800", "中文", "a\u0085b", "already UPPER", "mixed Été ß 😀"]


def gen_upper():
    w = sys.stdout.write
    w("/* str.upper() */\nstatic const struct upper_vec { const char *in, *out; } upper_vecs[] = {\n")
    for u in UPPER:
        w("    {%s, %s},\n" % (c(u), c(u.upper())))
    w("};\n\n")


SM = ["sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics", "sagemaker_region",
      "sagemaker_container_log_level", "sagemaker_job_name", "default_user_module_name", "_tuning_objective_metric",
      "sagemaker_s3_output"]


def read_hyperparameters(d):
    out = {}
    for k, v in d.items():
        try:
            v = json.loads(v)
        except (ValueError, TypeError):
            pass
        out[k] = v
    return out


def to_cmd_args(mapping):
    def _decode(obj):
        return "" if obj is None else str(obj)

    def arg_name(obj):
        string = _decode(obj)
        if string:
            return "--%s" % string if len(string) > 1 else "-%s" % string
        return ""

    def arg_value(value):
        if hasattr(value, "items"):
            return ",".join(["%s=%s" % (k, v) for k, v in sorted(value.items())])
        return _decode(value)

    out = []
    for k in sorted(mapping.keys()):
        out += [arg_name(k), arg_value(mapping[k])]
    return out


def format_value(v):
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return dumps(v)


HP = [
    # contract section 2 (the toolkit's own test vectors)
    '{"da-sh":"1","un_der":"2","un-sh":"3","da_der":"2"}',
    '{"U":"1","b":"2","T":"","":"42"}',
    '{"nested":["1",["2","3",[["6"]]]]}',
    '{"map":{"a":[1,3,4]},"channel_dirs":{"train":"foo","eval":"bar"}}',
    '{"truthy":true,"falsy":false}',
    '{"floats":4.0,"int":2}',
    # as the SageMaker Python SDK writes them: every value JSON-encoded into a string
    '{"epochs":"10","lr":"1e-05","optimizer":"\\"adam\\"","sagemaker_program":"\\"train.py\\"",'
    '"sagemaker_submit_directory":"\\"s3://b/k/source.tar.gz\\"","sagemaker_region":"\\"us-west-2\\"",'
    '"sagemaker_container_log_level":"20","sagemaker_job_name":"\\"job-1\\"","sagemaker_distributed_dataparallel_enabled":"true",'
    '"sagemaker_instance_type":"\\"ml.p4d.24xlarge\\"","_tuning_objective_metric":"\\"loss\\"","default_user_module_name":"\\"m\\""}',
    # raw values from other callers
    '{"optimizer":"adam","version":"1.2.3","pad":" 5 ","big":"12345678901234567890","neg":"-12345678901234567890",'
    '"negzero":"-0","f":"1E+16","tiny":"5e-324","nan":"NaN","inf":"-Infinity","none":"null","t":"true","empty":""}',
    '{"x":"1","é":"2","中文":"\\"\\u00e9\\"","😀":"[\\"😀\\", \\"\\u0085\\u00a0\\u2028\\"]","key with space":"a b"}',
    '{"quotes":"[\\"it\'s \\\\\\"x\\\\\\"\\"]","sq":"[\\"it\'s\\"]","dq":"[\\"say \\\\\\"hi\\\\\\"\\"]","ctl":"[\\"\\\\u0000\\\\u0007\\\\n\\"]"}',
    '{"d":"{\\"b\\": null, \\"a\\": {\\"y\\": [1, 2.0]}, \\"c\\": \\"s\\", \\"e\\": true}","e":"{}","l":"[]","n":"null"}',
    '{"a":"1","a":"2","sagemaker_foo":"{\\"k\\": [1, 2]}","sagemaker_s3_output":"\\"s3://x\\""}',
    '{"learning-rate":"0.1","train-data":"\\"x\\"","ß":"1","ﬁ":"2","ŉ":"3"}',
    '{"raw_num":5,"raw_list":[1,"2"],"raw_null":null,"raw_float":1.0}',
]


def gen_hp():
    w = sys.stdout.write
    w("/* hyperparameters.json -> argv, SM_HP_* (file order), SM_HPS, SM_FRAMEWORK_PARAMS */\n")
    w("static const struct hp_vec { const char *file; const char *argv[40]; const char *env[40];\n"
      "    const char *hps; const char *framework; } hp_vecs[] = {\n")
    for t in HP:
        d = read_hyperparameters(json.loads(t))
        user = {k: v for k, v in d.items()
                if not (k.startswith("sagemaker_") or k in ("_tuning_objective_metric", "default_user_module_name"))}
        fw = {k: v for k, v in d.items() if k not in user and k not in SM}
        args = to_cmd_args(user)
        env = []
        for k, v in user.items():
            env += ["SM_HP_" + k.upper(), format_value(v)]
        assert len(args) < 40 and len(env) < 40
        w("    {%s,\n     {%s NULL},\n     {%s NULL},\n     %s,\n     %s},\n"
          % (c(t), "".join(c(a) + ", " for a in args), "".join(c(e) + ", " for e in env), c(dumps(user)), c(dumps(fw))))
    w("};\n\n")


def main():
    w = sys.stdout.write
    w("/* Generated by tools/gen_pyjson_vectors.py with Python %s.  Do not edit. */\n" % sys.version.split()[0])
    w("#include <stddef.h>\n#include <stdint.h>\n#define S(lit) lit, sizeof(lit) - 1\n\n")
    gen_parse()
    gen_floats()
    gen_upper()
    gen_hp()


if __name__ == "__main__":
    main()
