#!/usr/bin/env python3
"""DynamoDB helper of `loadtest-peer` (run with the peer venv's python, against moto directly,
so none of these requests is counted as the worker's):

    peer-ddb.py create TABLE     create the peer's table: string hash key `patient_id`
    peer-ddb.py stats PREFIX     the one table whose name starts with PREFIX (or is PREFIX):
                                 items and their sizes as DynamoDB bills writes, as one JSON line

Sizes follow DynamoDB's item size rules: attribute name bytes plus value bytes (strings: UTF-8
length; numbers: about one byte per two significant digits plus one; booleans and nulls: one;
maps and lists: three bytes plus one per element plus their contents). A standard write costs
one write request unit per started KB of the item, a TransactWriteItems item two.
Only sizes and counts are printed, never a value."""
import json, math, sys
import boto3


def value_size(v):
    (t, x), = v.items()
    if t == 'S':
        return len(x.encode('utf-8'))
    if t == 'N':
        digits = x.lstrip('-').replace('.', '').strip('0') or '0'
        return (len(digits) + 1) // 2 + 1
    if t == 'B':
        return len(x)
    if t in ('BOOL', 'NULL'):
        return 1
    if t == 'M':
        return 3 + sum(len(k.encode('utf-8')) + value_size(e) + 1 for k, e in x.items())
    if t == 'L':
        return 3 + sum(value_size(e) + 1 for e in x)
    if t in ('SS', 'NS', 'BS'):
        return sum(value_size({t[0]: e}) for e in x)
    raise ValueError(f'unknown attribute type {t}')


def item_size(item):
    return sum(len(k.encode('utf-8')) + value_size(v) for k, v in item.items())


def main():
    cmd, name = sys.argv[1], sys.argv[2]
    ddb = boto3.client('dynamodb')
    if cmd == 'create':
        ddb.create_table(TableName=name, BillingMode='PAY_PER_REQUEST',
                         AttributeDefinitions=[{'AttributeName': 'patient_id', 'AttributeType': 'S'}],
                         KeySchema=[{'AttributeName': 'patient_id', 'KeyType': 'HASH'}])
        return
    if cmd != 'stats':
        sys.exit(f'unknown command {cmd}')
    tables = [t for p in ddb.get_paginator('list_tables').paginate() for t in p['TableNames']]
    match = [t for t in tables if t == name or t.startswith(name)]
    if len(match) != 1:
        sys.exit(f'expected one table named {name}*, found {len(match)}')
    sizes, by_prefix = [], {}
    for page in ddb.get_paginator('scan').paginate(TableName=match[0]):
        for i in page['Items']:
            size = item_size(i)
            sizes.append(size)
            # The fleet's keys: MSG#..., PATIENT#..., ENCOUNTER#... (the kind, never a value).
            kind = i['pk']['S'].split('#', 1)[0] if 'S' in i.get('pk', {}) else ''
            k = by_prefix.setdefault(kind, {'items': 0, 'bytes_total': 0, 'kb_units_total': 0})
            k['items'] += 1
            k['bytes_total'] += size
            k['kb_units_total'] += max(1, math.ceil(size / 1024))
    for k in by_prefix.values():
        k['bytes_mean'] = k['bytes_total'] / k['items']
        k['kb_units_mean'] = k['kb_units_total'] / k['items']
    kb = [max(1, math.ceil(s / 1024)) for s in sizes]
    print(json.dumps({
        'table': match[0], 'items': len(sizes), 'bytes_total': sum(sizes),
        'bytes_mean': sum(sizes) / max(len(sizes), 1), 'bytes_max': max(sizes, default=0),
        'kb_units_total': sum(kb),
        'items_over_1kb': sum(1 for s in sizes if s > 1024),
        'by_key_kind': by_prefix,
    }))


main()
